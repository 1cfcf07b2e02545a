"""`kdbench run`: suite -> data -> plan -> execute -> run directory. Nothing here trains or scores;
it wires the stages together and writes what they made into the results contract."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kdbench.config import Suite, conditions_of, transfer_source
from kdbench.config.plugins import plugin_failure, plugin_files
from kdbench.data.errors import DataError
from kdbench.evaluation.model_metrics.rows import model_metric_rows
from kdbench.executors.base import EVAL_GROUP, KINDS
from kdbench.executors.local import LocalExecutor
from kdbench.executors.store import Store
from kdbench.pipeline.jobs import JobRunner, read_eval
from kdbench.pipeline.plan import Plan
from kdbench.pipeline.prepare import data_root_of, make_deterministic, prepare, resolve_device
from kdbench.results.contract import DIAGNOSTIC_COLUMNS, TRAINING_COLUMNS, write_run
from kdbench.training.loop import epoch_metrics
from kdbench.training.methods import teacher_log_probs
from kdbench.util import portable
from kdbench.util.allocator import keep_freed_memory
from kdbench.util.errors import CodeFailed, UserError
from kdbench.util.hashing import content_hash, weights_sha256
from kdbench.util.names import RESULTS_FORMAT, corruption_condition
from kdbench.version import __version__


def run_suite(
    suite: Suite,
    *,
    data_root=None,
    out="results",
    cache_dir=None,
    device="auto",
    force=False,
    dry_run=False,
    deterministic=True,
    executor="local",
    ray_options=None,
    eval_group=None,
    jobs=1,
    threads=None,
    track=(),
    log=print,
):
    """`track`: experiment-tracking backends (kdbench.tracking.BACKENDS) that log every model's
    parameters, epochs and final metrics and the report; they change no hash and no number."""
    if track:
        from kdbench.tracking import check_installed

        check_installed(track)  # before any work: exit 2 naming the extra to install
    if not isinstance(jobs, int) or jobs < 1:
        raise UserError(f"jobs={jobs!r}: expected a whole number of jobs, 1 or more")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UserError(f"threads={threads!r}: expected a whole number of threads, 1 or more")
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    keep_freed_memory()
    if suite.reproducible == "portable":
        if threads not in (None, portable.THREADS):
            raise portable.PortableError(
                f"threads={threads}: portable mode runs every job at {portable.THREADS} thread"
            )
        portable.apply()  # refuses when torch was imported without the pinned environment
        threads = portable.THREADS
    if threads is not None:  # per job: with --jobs N, each worker process runs its jobs at this many
        torch.set_num_threads(threads)
    elif jobs > 1:  # the cores shared among the jobs at once
        torch.set_num_threads(max(1, torch.get_num_threads() // jobs))
    dev = resolve_device(device)
    make_deterministic(deterministic)
    store = Store(Path(cache_dir) if cache_dir else Path(out) / "_cache")
    try:
        splits, test_eval, plan = prepare(suite, data_root, store.root / "robustbench", fetch=not dry_run)
    except DataError as exc:
        if dry_run and suite.dataset.download:
            raise DataError(f"{exc} (--dry-run downloads nothing: run without it to download)") from None
        raise
    # several jobs at once: the evaluations in as many groups as jobs run at once (numbers unchanged)
    group = eval_group or min(EVAL_GROUP, max(1, math.ceil(len(plan.eval_jobs) / jobs)))
    if dry_run:
        dry_run_estimate(plan, store, splits, test_eval, dev, force, jobs if executor == "local" else 1, group, log)
        return None
    runner = JobRunner(plan, splits, test_eval, conditions_of(suite.evaluate), store, dev, log=log)
    for file in store.plugin_files_changed(plugin_files()):
        log(f"plugin file {file} changed since this job store last ran it: the jobs that use what changed run again")
    tracking = None
    if track:
        from kdbench.tracking import Tracking
        from kdbench.tracking.logs import start as start_tracking

        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        tracking = start_tracking(Tracking.start(track, Path(out).resolve(), suite.name, stamp), suite, log)
        runner.tracking = tracking

    def worker_context(per_kind: dict[str, int]):
        from kdbench.config.plugins import shippable
        from kdbench.executors.worker import WorkerContext

        root = data_root_of(suite, data_root)
        root = str(root.resolve()) if root is not None else None
        # the workers read the data where the driver resolved it (dataset.root is not in any hash)
        shipped = suite.model_dump(mode="json")
        shipped["dataset"]["root"] = None
        return WorkerContext(
            shipped,
            root,
            str(store.root.resolve()),
            device,
            deterministic,
            per_kind,
            shippable(suite.plugins),
            tracking=tracking,
        )

    try:
        if executor == "ray":
            from kdbench.executors.ray import RayExecutor
            from kdbench.executors.ray_config import RayOptions

            options = ray_options or RayOptions()
            records = RayExecutor(store, worker_context(options.threads), options, log=log).run(plan.jobs, force=force)
            executor_info = {"name": "ray", **dataclasses.asdict(options)}
        else:
            per_job = dict.fromkeys(KINDS, torch.get_num_threads())
            context = worker_context(per_job) if jobs > 1 else None
            records = LocalExecutor(store, group_size=group, log=log, jobs=jobs, context=context, threads=per_job).run(
                plan.jobs, runner.handlers(), force=force
            )
            executor_info = {"name": "local", "eval_group": group, "jobs": jobs}
    except BaseException:  # a failed job, Ctrl-C: the trackers' run-level records say it stopped
        if tracking is not None:
            from kdbench.tracking.logs import abort

            abort(tracking, log)
        raise
    metrics, correct, agreement, diagnostics, attack_seconds, (model_metrics, model_values) = assemble(
        plan, store, test_eval
    )
    # the gate tells "the same networks re-evaluated" from "retrained" by these
    weights = {}
    for (name, seed), job in plan.eval_jobs.items():
        weights.setdefault(name, {})[str(seed)] = weights_sha256(runner.load_model(job.deps[0], keep=False))
    summary = corruption_summary(suite, metrics)
    finished = datetime.now(timezone.utc)
    run_id, run_dir = claim_run_dir(Path(out) / suite.name, started.strftime("%Y%m%dT%H%M%SZ"))
    manifest = {
        "kdbench_version": __version__,
        "results_format": RESULTS_FORMAT,
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "torchattacks": _version("torchattacks"),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name(),
        "cpu": _cpu_name(),
        "threads": job_threads(records),
        "deterministic": deterministic,
        "reproducible": portable.describe() if suite.reproducible == "portable" else {"mode": "machine"},
        "executor": executor_info,  # where each job ran and how often: "jobs"
        "started": started.isoformat(),
        "finished": finished.isoformat(),
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
        "weights_sha256": weights,
    }
    corruptions = getattr(suite.evaluate, "corruptions", None)
    if corruptions is not None and corruptions.source == "generate":
        from kdbench.evaluation.conditions.corruptions import describe_set

        manifest["corruption_parameters"] = describe_set(int(test_eval.images.shape[-1]))
    if tracking is not None:
        manifest["tracking"] = {"backends": list(tracking.backends), "session": tracking.session}
    write_run(
        run_dir,
        manifest,
        metrics,
        test_eval.indices.numpy(),
        correct,
        agreement,
        summary,
        diagnostics,
        model_metrics,
        model_values,
        training_curves(plan, store),
    )
    latest = run_dir.parent / "latest"
    if latest.is_symlink() or not latest.exists():
        tmp = run_dir.parent / f".latest.{os.getpid()}.tmp"  # per process: two runs may finish together
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(run_id)
        os.replace(tmp, latest)
    index_run(Path(out), run_dir, log)
    if tracking is not None:
        from kdbench.tracking.logs import finish

        finish(tracking, plan, store, records, run_dir, runner, log)
    return run_dir


def dry_run_estimate(plan: Plan, store: Store, splits, test_eval, dev, force, workers: int, group: int, log) -> None:
    """Each job still to run with its estimate, then the run's wall-clock estimate at `workers` jobs at once."""
    from kdbench.pipeline.estimate import estimate, wall_clock
    from kdbench.pipeline.jobs import teacher_logits_path
    from kdbench.util.progress import rough_duration

    todo = [j for j in plan.jobs if force or not store.done(j)]
    cached = {
        tuple(d.hash for d in j.deps)
        for j in plan.jobs
        if j.kind == "student" and j.deps and "data" in j.spec
        if teacher_logits_path(store.root, j.deps, j.spec["data"]).is_file()
    }
    seconds = estimate(plan, len(splits.train), len(test_eval), dev, todo, group, cached)
    for job, line in zip(plan.jobs, plan.describe()):
        log(f"to run {line}  ~{rough_duration(seconds[job.hash])}" if job.hash in seconds else f"done   {line}")
    total = sum(s for s in seconds.values() if not math.isnan(s))
    unknown = sum(1 for s in seconds.values() if math.isnan(s))
    wall = wall_clock(todo, seconds, workers, group)
    log(
        f"estimate: about {rough_duration(wall)} for {len(todo)} job(s) on {dev}"
        + (f" at {workers} at once ({rough_duration(total)} of work)" if workers > 1 else "")
        + (f", plus {unknown} not priced (not a kdbench architecture)" if unknown else "")
        + "; rough: one batch per architecture timed here, without data loading; attacks priced on every "
        "example (they skip those misclassified when clean), AutoAttack and Square at their full budgets"
    )


def index_run(out: Path, run_dir: Path, log) -> None:
    """Record the run in `out`/runs.sqlite, as `kdbench index` would: an index that cannot be
    written costs a line, never the run (its folder is complete and can be indexed later)."""
    import sqlite3

    from kdbench.index.database import FILE_NAME, IndexFileError, index_runs

    try:
        index_runs(out / FILE_NAME, [run_dir], log=log)
    except (IndexFileError, sqlite3.Error, OSError) as exc:
        log(f"not indexed: {exc} (the run is complete; kdbench index {out} records it later)")


def job_threads(records) -> int | list[int]:
    """The torch threads the run's CPU jobs were computed at: one number, or the list when its cached
    jobs were made at several (the gate then says the numbers may not repeat exactly)."""
    counts = sorted({r.threads for r in records if r.device == "cpu" and r.threads is not None})
    if not counts:
        return torch.get_num_threads()
    return counts[0] if len(counts) == 1 else counts


def claim_run_dir(parent: Path, run_id: str) -> tuple[str, Path]:
    """A run directory of our own: created here, never one another run (started in the same
    second) is writing to; the id gets a suffix -2, -3, ... when taken."""
    parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        candidate = run_id if k == 1 else f"{run_id}-{k}"
        try:
            (parent / candidate).mkdir()
            return candidate, parent / candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"{parent}: 999 runs started in the same second")


def assemble(plan: Plan, store: Store, test_eval):
    """Metrics rows, per-example correctness and agreement, from the evaluate jobs' outputs."""
    suite = plan.suite
    rows, correct_rows, checks, seconds = [], [], [], {}
    # (model, seed) -> cell -> logits; model -> (role, method, arch); input gradients
    logits_by, describe, grads_by, transfer_by, attack_refs = {}, {}, {}, {}, {}
    for (name, seed), job in plan.eval_jobs.items():
        ev = read_eval(store, job)
        # an evaluation cached before the L2 threat model names no norm: its checks with an eps are Linf's
        checks += [dict(model=name, seed=seed, norm="Linf" if c["eps"] else "") | c for c in ev["checks"]]
        if ev["attack_seconds"]:
            seconds[f"{name}:seed{seed}"] = ev["attack_seconds"]
        if name in suite.teachers:
            t = suite.teachers[name]
            # a trained teacher names its method (a T=100 teacher is not a plain one); others their source
            role, method, arch = (
                "teacher",
                t.method_spec.name if t.source == "recipe" else t.source,
                t.arch or t.robustbench,
            )
        else:
            s = suite.students[name]
            role, method, arch = s.role, s.method.name, s.arch
        describe[name] = (role, method, arch)
        keys = [
            (corruption_condition(str(c)) if g == "corruption" else str(c), str(g), str(lv))
            for c, g, lv in zip(ev["condition"], ev["group"], ev["level"])
        ]
        count = ev["count"]
        # a condition scored on its first n examples: its rows, logits and references cut to them
        logits_by[(name, seed)] = {
            keys[r]: torch.from_numpy(ev["logits"][j][: count[r]]) for j, r in enumerate(ev["logit_rows"])
        }
        if "saliency" in ev:
            grads_by[(name, seed)] = torch.from_numpy(ev["saliency"]).float()
        # transfer cells: (this model right, the source right), per example
        for j, r in enumerate(ev.get("source_rows", [])):
            transfer_by.setdefault((name, seed), {})[keys[r]] = (
                transfer_source(suite, name, seed)[0],
                torch.from_numpy(ev["correct"][r][: count[r]]),
                torch.from_numpy(ev["source_correct"][j][: count[r]]),
            )
        # attack cells: the reference teachers' logits on this model's adversarial examples
        for j, r in enumerate(ev.get("reference_rows", [])):
            attack_refs.setdefault((name, seed), {})[keys[r]] = torch.from_numpy(
                ev["reference_logits"][j][:, : count[r]]
            )
        for c, k, (cond, group, level) in zip(ev["correct"], count, keys):
            rows.append(
                dict(
                    model=name,
                    role=role,
                    method=method,
                    arch=arch,
                    seed=seed,
                    condition=cond,
                    group=group,
                    level=level,
                    n=int(k),
                    correct=int(c[:k].sum()),
                    accuracy=float(c[:k].mean()),
                )
            )
            correct_rows.append(c)
    clean = ("clean", "clean", "")
    agreement = []
    for name, s in suite.students.items():
        if not s.teachers:
            continue
        t_logits = torch.stack([logits_by[(t, suite.teachers[t].seed)][clean] for t in s.teachers])
        t_pred = teacher_log_probs(t_logits, 1.0, s.ensemble or "mean_probs").argmax(1)
        for seed in s.seeds:
            agree = int((logits_by[(name, seed)][clean].argmax(1) == t_pred).sum())
            agreement.append(
                dict(
                    model=name,
                    seed=seed,
                    teachers="+".join(s.teachers),
                    n=len(t_pred),
                    agree=agree,
                    agreement=agree / len(t_pred),
                )
            )
    metrics = pd.DataFrame(rows)
    correct = np.stack(correct_rows) if correct_rows else np.zeros((0, len(test_eval)), dtype=bool)
    diagnostics = pd.DataFrame(checks, columns=DIAGNOSTIC_COLUMNS) if checks else None
    try:
        model_metrics = model_metric_rows(
            suite, logits_by, test_eval.labels.long(), describe.__getitem__, grads_by, transfer_by, attack_refs
        )
    except Exception as exc:  # noqa: BLE001 - a plugin metric's exception is said with its own frames
        told = plugin_failure(exc)
        if told is None:
            raise
        raise CodeFailed(f"the model metrics: {told}") from None
    return metrics, correct, pd.DataFrame(agreement), diagnostics, seconds, model_metrics


def training_curves(plan: Plan, store: Store) -> pd.DataFrame:
    """Per-epoch rows (TRAINING_COLUMNS) of every model trained for this run, from its job's
    history.json: each named loss term, `loss` (their sum, the objective), train_accuracy and lr
    (absent for jobs trained before kdbench recorded it)."""
    suite, rows = plan.suite, []
    for (name, seed), job in plan.eval_jobs.items():
        history = store.path(job.deps[0]) / "history.json"
        if not history.is_file():  # loaded, not trained
            continue
        if name in suite.teachers:
            role, method = "teacher", suite.teachers[name].method_spec.name
        else:
            role, method = suite.students[name].role, suite.students[name].method.name
        for epoch in json.loads(history.read_text()):
            for metric, value in epoch_metrics(epoch).items():
                rows.append(
                    dict(
                        model=name,
                        role=role,
                        method=method,
                        seed=seed,
                        epoch=epoch["epoch"],
                        metric=metric,
                        value=value,
                    )
                )
    return pd.DataFrame(rows, columns=TRAINING_COLUMNS)


def corruption_summary(suite: Suite, metrics: pd.DataFrame):
    """Mean corruption accuracy, CE and mCE (against the suite's reference model), when corruptions ran."""
    spec = getattr(suite.evaluate, "corruptions", None)
    if spec is None or not (metrics["group"] == "corruption").any():
        return None
    from kdbench.evaluation.conditions.corruptions.metrics import corruption_summary as summarise
    from kdbench.evaluation.conditions.corruptions.metrics import published_mce

    summary = summarise(metrics, spec.reference_model)
    if spec.published_errors:
        summary = pd.concat([summary, published_mce(metrics, spec.published_errors)], ignore_index=True)
    return summary


def _version(package: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return None


def _git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
