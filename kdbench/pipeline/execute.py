"""Running the plan's jobs: torch's threads for this run, the executor the options name (local, in
this process or in worker processes; Ray), and the worker context those rebuild the run from."""

from __future__ import annotations

import dataclasses

import torch

from kdbench.config import Suite
from kdbench.config.plugins import shippable
from kdbench.executors.base import KINDS
from kdbench.executors.local import LocalExecutor
from kdbench.executors.store import Store
from kdbench.pipeline.jobs import JobRunner
from kdbench.pipeline.options import RunOptions
from kdbench.pipeline.prepare import data_root_of
from kdbench.pipeline.worker import WorkerContext
from kdbench.util import portable


def set_threads(suite: Suite, options: RunOptions) -> None:
    """Torch's threads: the options' per job; portable mode's one; or the cores shared by the jobs at once."""
    threads = options.threads
    if suite.reproducible == "portable":
        if threads not in (None, portable.THREADS):
            raise portable.PortableError(
                f"threads={threads}: portable mode runs every job at {portable.THREADS} thread"
            )
        portable.apply()  # refuses when torch was imported without the pinned environment
        threads = portable.THREADS
    if threads is not None:  # per job: with --jobs N, each worker process runs its jobs at this many
        torch.set_num_threads(threads)
    elif options.jobs > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // options.jobs))


def execute(suite, options: RunOptions, plan, store: Store, runner: JobRunner, group: int, hooks):
    """Every job of the plan, on the options' executor: (their records, the executor's description)."""

    def context(per_kind: dict[str, int]) -> WorkerContext:
        root = data_root_of(suite, options.data_root)
        # the workers read the data where the driver resolved it (dataset.root is not in any hash)
        shipped = suite.model_dump(mode="json")
        shipped["dataset"]["root"] = None
        return WorkerContext(
            shipped,
            str(root.resolve()) if root is not None else None,
            str(store.root.resolve()),
            options.device,
            options.deterministic,
            per_kind,
            shippable(suite.plugins),
            hooks=hooks,
        )

    if options.executor == "ray":
        from kdbench.executors.ray import RayExecutor
        from kdbench.executors.ray_config import RayOptions

        ray = options.ray_options or RayOptions()
        records = RayExecutor(store, context(ray.threads), ray, log=options.log).run(plan.jobs, force=options.force)
        return records, {"name": "ray", **dataclasses.asdict(ray)}
    per_job = dict.fromkeys(KINDS, torch.get_num_threads())
    executor = LocalExecutor(
        store,
        group_size=group,
        log=options.log,
        jobs=options.jobs,
        context=context(per_job) if options.jobs > 1 else None,
        threads=per_job,
    )
    records = executor.run(plan.jobs, runner.functions(), force=options.force)
    return records, {"name": "local", "eval_group": group, "jobs": options.jobs}
