"""The executor interface and the local executor: run what is missing, skip what is done.

A job's output is a directory `<cache>/jobs/<hash>/` that appears whole or not at all (built
under a temporary name and renamed), with `job.json` inside; so Ctrl-C or a crash leaves
nothing half-written, and the next run resumes from the jobs that finished. The Ray executor
(`bench/ray_executor.py`) is another implementation of `Executor.run` over the same store; both
run a group of jobs with `run_group`, so a job's output is the same whichever ran it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

from .atomic import atomic_dir, remove_stale_parts
from .plan import Job

# kind -> handler(jobs, output_dirs); a batched kind receives all its ready jobs at once
Handlers = dict[str, Callable[[Sequence[Job], Sequence[Path]], None]]


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
    resources: dict = field(default_factory=dict)  # what its task reserved on a cluster ({"CPU": 1.0, "GPU": 0.25}; Ray)


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, job: Job) -> Path:
        return self.root / "jobs" / job.hash

    def done(self, job: Job) -> bool:
        return (self.path(job) / "job.json").is_file()

    def record(self, job: Job, cached: bool) -> JobRecord:
        meta = json.loads((self.path(job) / "job.json").read_text())
        return JobRecord(job.id, job.kind, job.hash, job.model, job.seed, meta["wall_s"], cached,
                         meta.get("node", ""), meta.get("attempts", 1), meta.get("resources", {}))


def run_group(store: Store, group: Sequence[Job], handler, *, force: bool = False, attempts: int = 1, resources: dict | None = None) -> None:
    """Run `group` (jobs of one kind) through its handler into atomic job folders, each with its
    job.json: the spec, the parents' hashes, the wall time (shared evenly in a batch), the host
    and the attempt that made it (on a cluster, also the resources its task reserved). Without `force` a job finished meanwhile by another run or
    task is kept, and this copy discarded."""
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(atomic_dir(store.path(j), replace=force)) for j in group]
        handler(group, outs)
        wall = (time.perf_counter() - start) / len(group)
        for j, out in zip(group, outs):
            meta = {"id": j.id, "spec": j.spec, "deps": [d.hash for d in j.deps], "wall_s": wall, "node": socket.gethostname(),
                    "attempts": attempts}  # fmt: skip
            if resources is not None:
                meta["resources"] = resources
            (out / "job.json").write_text(json.dumps(meta, indent=1, default=str))


class Executor(Protocol):
    def run(self, jobs: Sequence[Job], handlers: Handlers, *, force: bool = False) -> list[JobRecord]: ...


EVAL_GROUP = 8  # evaluation jobs scored together by default: a perturbed batch is made once per group of models


class LocalExecutor:
    """Runs jobs in plan order in this process; up to `group_size` consecutive jobs of a batched
    kind run together (evaluation: every perturbed batch made once for the models of a group, and
    only a group's models held at once). Grouping changes no number."""

    def __init__(self, store: Store, batched: Sequence[str] = ("evaluate",), group_size: int = EVAL_GROUP, log: Callable[[str], None] = print):
        self.store, self.batched, self.group_size, self.log = store, set(batched), group_size, log

    def run(self, jobs, handlers, *, force=False):
        todo, records = plan_todo(self.store, jobs, force, self.log)
        i, began, total = 0, time.perf_counter(), len(todo)
        for group in job_groups(todo, self.group_size, self.batched):
            done, i = i, i + len(group)
            self.log(f"[{done + 1}{f'-{i}' if len(group) > 1 else ''}/{total}] running {', '.join(j.id for j in group)} "
                     f"(elapsed {_clock(time.perf_counter() - began)})")  # fmt: skip
            start = time.perf_counter()
            run_group(self.store, group, handlers[group[0].kind], force=force)
            for j in group:
                records[j.hash] = self.store.record(j, cached=False)
            self.log(f"[{i}/{total}] done in {_clock(time.perf_counter() - start)}")
        return [records[j.hash] for j in jobs]


def job_groups(todo: Sequence[Job], size: int, batched=("evaluate",)) -> list[list[Job]]:
    """`todo` in plan order, cut into the groups an executor runs together: up to `size` consecutive
    jobs of a batched kind, every other job alone (the same groups on either executor)."""
    groups: list[list[Job]] = []
    for j in todo:
        last = groups[-1] if groups else None
        if last and j.kind in batched and last[0].kind == j.kind and len(last) < size:
            last.append(j)
        else:
            groups.append([j])
    return groups


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


def _clock(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"
