"""The worker side of every executor that runs jobs outside the driver's process (the local
executor's worker processes with --jobs N, Ray's tasks): a small, picklable `WorkerContext`
(executors.base.WorkerContext) from which a process rebuilds the suite, its plugins, the data and
the plan once, and keeps them for its next jobs; its `run_jobs` runs a group of jobs into the
store as the driver would."""

from __future__ import annotations

import json
import socket
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from kdbench.executors.store import Store, run_group
from kdbench.util.errors import UserError

ATTEMPTS = "attempts"


class WorkerError(UserError, RuntimeError):
    """A worker cannot rebuild the driver's run: a plugin that does not import there, or data that differ."""


@dataclass(frozen=True)
class WorkerContext:
    """What a worker needs to rebuild the run's plan and job functions in its own process."""

    suite: dict  # the suite as data (model_dump): a plugin's schema is rebuilt on the worker
    data_root: str | None
    store_root: str
    device: str
    deterministic: bool
    threads: dict[str, int]  # per job kind
    plugins: tuple = ()  # (spec, source or None, helper sources) per plugin of the suite: config.plugins.shippable
    run_token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])  # names this run's attempt records
    hooks: tuple = ()  # pipeline.hooks.RunHook: the models trained here log there

    @property
    def environment(self) -> dict[str, str] | None:
        if self.suite.get("reproducible") != "portable":
            return None
        from kdbench.util.portable import environment

        return environment()

    def run_jobs(self, kind: str, hashes: Sequence[str], force: bool, resources=None, attempt: int = 1) -> list[str]:
        return run_jobs(self, kind, hashes, force, resources, attempt)

    @property
    def attempts_dir(self) -> Path:
        return Path(self.store_root) / ATTEMPTS / self.run_token

    @property
    def key(self) -> str:
        from kdbench.util.hashing import content_hash

        # what the worker's cached runner is built from (threads are set per group of jobs)
        return content_hash(
            [self.suite, self.plugins, self.data_root, self.store_root, self.device, self.deterministic]
        )


_RUNNERS: dict[str, tuple] = {}  # per worker process: context key -> (jobs by hash, JobRunner)


def runner_for(ctx: WorkerContext):
    """(jobs by hash, JobRunner) of the context's run, built on first use in this process."""
    key = ctx.key
    if key not in _RUNNERS:
        from kdbench.config import conditions_of
        from kdbench.config.plugin_import import PluginError
        from kdbench.config.plugins import load_entry_points, load_shipped
        from kdbench.config.schema import suite_model
        from kdbench.pipeline.jobs import JobRunner
        from kdbench.pipeline.prepare import make_deterministic, prepare, resolve_device

        try:  # the same plugins as the driver, or a message saying which could not be imported here
            load_entry_points()
            load_shipped(ctx.plugins)
        except PluginError as exc:
            raise WorkerError(f"a worker on {socket.gethostname()} cannot import the suite's plugins: {exc}") from None
        # through JSON, as it travelled: its checkpoints' seeds are JSON keys (strings), which only
        # JSON validation reads as the integers that seeds must be
        suite = suite_model().model_validate_json(json.dumps(ctx.suite))
        make_deterministic(ctx.deterministic)
        store = Store(Path(ctx.store_root))
        splits, test_eval, plan = prepare(suite, ctx.data_root, store.root / "robustbench", fetch=False)
        runner = JobRunner(
            plan,
            splits,
            test_eval,
            conditions_of(suite.evaluate),
            store,
            resolve_device(ctx.device),
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
        _RUNNERS.clear()  # one run's data at a time per worker
        _RUNNERS[key] = ({j.hash: j for j in plan.jobs}, runner)
    return _RUNNERS[key]


def run_jobs(
    ctx: WorkerContext, kind: str, hashes: Sequence[str], force: bool, resources=None, attempt: int = 1
) -> list[str]:
    """Run the jobs `hashes` (all of `kind`) unless already done, at the context's threads for the kind."""
    import torch

    from kdbench.util.allocator import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(ctx.threads[kind])  # a worker may run jobs of every kind
    if ctx.suite.get("reproducible") == "portable":  # the environment came from the driver's
        from kdbench.util import portable

        portable.apply()
    store = Store(Path(ctx.store_root))
    by_hash, runner = runner_for(ctx)
    runner.hooks = ctx.hooks  # not in the runner's key: a worker kept from an earlier run logs to this one
    missing = [h for h in hashes if h not in by_hash]
    if missing:
        raise WorkerError(
            f"job {missing[0]} is not in the plan this worker made from the suite and {ctx.data_root}: "
            "does every worker see the same data and checkpoints at the same paths?"
        )
    group = [by_hash[h] for h in hashes if force or not store.done(by_hash[h])]
    try:
        if group:
            functions = runner.functions()
            run_group(
                store,
                group,
                functions.by_kind[kind],
                device=functions.device,
                force=force,
                attempts=attempt,
                resources=resources,
            )
    finally:
        runner.release_models()  # a worker runs many jobs: it keeps the data, not every model it met
    return list(hashes)
