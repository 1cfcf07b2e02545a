"""The job store: one directory per job, `<store>/jobs/<hash>/`, that appears whole or not at all
(built under a temporary name and renamed), with `job.json` inside; so Ctrl-C or a crash leaves
nothing half-written, and the next run resumes from the jobs that finished. Every executor writes
through `run_group`, so a job's output is the same whichever executor ran it."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from kdbench.pipeline.plan import Job
from kdbench.util.atomic import atomic_dir, remove_stale_parts
from kdbench.util.errors import UserError
from kdbench.util.exit_codes import ExitCode


class JobFailed(UserError):
    """A job that could not finish for a cause only running it shows (out of memory): exit 1, and its
    folder is not left behind."""

    exit_code = ExitCode.FAIL


@dataclass
class JobRecord:
    id: str
    kind: str
    hash: str
    model: str
    seed: int
    wall_s: float
    cached: bool
    node: str = ""  # the host that ran it
    attempts: int = 1  # more than 1: a worker was lost and the job ran again (Ray)
    # what its task reserved on a cluster ({"CPU": 1.0, "GPU": 0.25}; Ray)
    resources: dict = field(default_factory=dict)


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, job: Job) -> Path:
        return self.root / "jobs" / job.hash

    def done(self, job: Job) -> bool:
        return (self.path(job) / "job.json").is_file()

    def record(self, job: Job, cached: bool) -> JobRecord:
        meta = json.loads((self.path(job) / "job.json").read_text())
        return JobRecord(
            job.id,
            job.kind,
            job.hash,
            job.model,
            job.seed,
            meta["wall_s"],
            cached,
            meta.get("node", ""),
            meta.get("attempts", 1),
            meta.get("resources", {}),
        )


def run_group(
    store: Store,
    group: Sequence[Job],
    handler,
    *,
    force: bool = False,
    attempts: int = 1,
    resources: dict | None = None,
) -> None:
    """Run `group` (jobs of one kind) through its handler into atomic job folders, each with its
    job.json: the spec, the parents' hashes, the wall time (shared evenly in a batch), the host
    and the attempt that made it (on a cluster, also the resources its task reserved). Without
    `force` a job finished meanwhile by another run or task is kept, and this copy discarded."""
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(atomic_dir(store.path(j), replace=force)) for j in group]
        try:
            handler(group, outs)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory is translated; the rest propagates
            if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # torch's, without torch
                text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise JobFailed(
                    f"{', '.join(j.id for j in group)}: out of memory ({text}); lower the recipe's batch_size, "
                    "evaluate.batch_size or --eval-group, or run on a larger device"
                ) from None
            raise
        wall = (time.perf_counter() - start) / len(group)
        for j, out in zip(group, outs):
            meta = {
                "id": j.id,
                "spec": j.spec,
                "deps": [d.hash for d in j.deps],
                "wall_s": wall,
                "node": socket.gethostname(),
                "attempts": attempts,
            }
            if resources is not None:
                meta["resources"] = resources
            (out / "job.json").write_text(json.dumps(meta, indent=1, default=str))


def plan_todo(store: Store, jobs: Sequence[Job], force: bool, log) -> tuple[list[Job], dict[str, JobRecord]]:
    """The distinct jobs still to run, in plan order, and the records of those already done."""
    stale = remove_stale_parts(store.root / "jobs")
    if stale:
        log(f"removed {len(stale)} unfinished job folder(s) left by runs that were killed")
    records: dict[str, JobRecord] = {}
    todo, seen = [], set()
    for j in jobs:  # identical jobs (same hash) run once
        if j.hash in seen:
            continue
        seen.add(j.hash)
        if force or not store.done(j):
            todo.append(j)
        else:
            records[j.hash] = store.record(j, cached=True)
    if records:
        log(f"{len(records)} of {len(seen)} jobs already done (cached); {len(todo)} to run")
    return todo, records
