"""`kdbench run`: suite -> data -> plan -> execute -> run directory. Nothing here trains or scores;
it wires the stages together and writes what they made into the results contract."""

from __future__ import annotations

import dataclasses
import math
import time
from datetime import datetime, timezone
from pathlib import Path

from kdbench.config import Suite, conditions_of
from kdbench.config.plugins import plugin_files
from kdbench.data.errors import DataError
from kdbench.executors.base import EVAL_GROUP
from kdbench.executors.store import Store
from kdbench.pipeline import assemble
from kdbench.pipeline.environment import environment, job_threads
from kdbench.pipeline.estimate import say_estimate
from kdbench.pipeline.execute import execute, set_threads
from kdbench.pipeline.jobs import JobRunner
from kdbench.pipeline.options import RunOptions
from kdbench.pipeline.prepare import make_deterministic, prepare, resolve_device
from kdbench.pipeline.run_dir import claim_run_dir, point_latest
from kdbench.results.write import write_run
from kdbench.util import portable
from kdbench.util.allocator import keep_freed_memory
from kdbench.util.hashing import content_hash
from kdbench.util.names import RESULTS_FORMAT
from kdbench.version import __version__


def run_suite(suite: Suite, options: RunOptions, hooks=()) -> Path | None:
    """Run `suite` as `options` say; the run directory (None for a dry run). `hooks`
    (pipeline.hooks.RunHook: tracking, the runs index) hear the run start, stop and finish, and log
    each model as it trains; they change no hash and no number. The caller's torch keeps its thread
    count (`kdbench.run` from a notebook, many runs in one process)."""
    import torch

    threads = torch.get_num_threads()
    try:
        return _run_suite(suite, options, hooks)
    finally:
        torch.set_num_threads(threads)


def _run_suite(suite: Suite, options: RunOptions, hooks) -> Path | None:
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    stamp, log = started.strftime("%Y%m%dT%H%M%SZ"), options.log
    keep_freed_memory()
    set_threads(suite, options)
    dev = resolve_device(options.device)
    make_deterministic(options.deterministic)
    store = Store(Path(options.cache_dir) if options.cache_dir else Path(options.out) / "_cache")
    try:
        splits, test_eval, plan = prepare(
            suite, options.data_root, store.root / "robustbench", fetch=not options.dry_run
        )
    except DataError as exc:
        if options.dry_run and suite.dataset.download:
            raise DataError(f"{exc} (--dry-run downloads nothing: run without it to download)") from None
        raise
    # several jobs at once: the evaluations in as many groups as jobs run at once (numbers unchanged)
    group = options.eval_group or min(EVAL_GROUP, max(1, math.ceil(len(plan.eval_jobs) / options.jobs)))
    if options.dry_run:
        workers = options.jobs if options.executor == "local" else 1
        say_estimate(plan, store, splits, test_eval, dev, options.force, workers, group, log)
        return None
    runner = JobRunner(plan, splits, test_eval, conditions_of(suite.evaluate), store, dev, log=log)
    for file in store.plugin_files_changed(plugin_files()):
        log(f"plugin file {file} changed since this job store last ran it: the jobs that use what changed run again")
    for hook in hooks:
        hook.started(suite, stamp, log)
    runner.hooks = tuple(hooks)
    try:
        records, executor_info = execute(suite, options, plan, store, runner, group, tuple(hooks))
    except BaseException:  # a failed job, Ctrl-C: the hooks' run-level records say it stopped
        for hook in hooks:
            hook.stopped(log)
        raise
    metrics, correct, agreement, diagnostics, attack_seconds, (model_metrics, model_values) = assemble.assemble(
        plan, store, test_eval
    )
    run_id, run_dir = claim_run_dir(Path(options.out) / suite.name, stamp)
    manifest = {
        "kdbench_version": __version__,
        "results_format": RESULTS_FORMAT,
        **environment(dev),
        "threads": job_threads(records),
        "deterministic": options.deterministic,
        "reproducible": portable.describe() if suite.reproducible == "portable" else {"mode": "machine"},
        "executor": executor_info,  # where each job ran and how often: "jobs"
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "wall_s": round(time.perf_counter() - t0, 3),
        "run_id": run_id,
        "suite_name": suite.name,
        "suite": suite.model_dump(mode="json"),
        "suite_hash": content_hash(suite.model_dump(mode="json")),
        "data_identity": splits.identity,
        "eval_spec": plan.eval_spec,
        "eval_spec_hash": content_hash(plan.eval_spec),
        "example_ids_sha256": plan.eval_spec["example_ids_sha256"],
        "n_examples": len(test_eval),
        "seeds": {n: s.seeds for n, s in suite.students.items()},
        "compare": [p.model_dump() for p in suite.pairs()],
        "twin_warnings": suite.twin_warnings(),
        "jobs": [dataclasses.asdict(r) for r in records],
        "attack_seconds": attack_seconds,
        # the gate tells "the same networks re-evaluated" from "retrained" by these
        "weights_sha256": assemble.weights(plan, store, runner.load_model),
    }
    corruptions = getattr(suite.evaluate, "corruptions", None)
    if corruptions is not None and corruptions.source == "generate":
        from kdbench.evaluation.conditions.corruptions import describe_set

        manifest["corruption_parameters"] = describe_set(int(test_eval.images.shape[-1]))
    for hook in hooks:
        manifest.update(hook.manifest())
    write_run(
        run_dir,
        manifest,
        metrics,
        test_eval.indices.numpy(),
        correct,
        agreement,
        assemble.corruption_summary(suite, metrics),
        diagnostics,
        model_metrics,
        model_values,
        assemble.training_curves(plan, store),
    )
    point_latest(run_dir)
    for hook in hooks:
        hook.finished(run_dir, plan, store, records, runner, log)
    return run_dir
