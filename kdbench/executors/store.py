"""The job store: one directory per job, `<store>/jobs/<hash>/`, that appears whole or not at all
(built under a temporary name and renamed), with `job.json` inside; so Ctrl-C or a crash leaves
nothing half-written, and the next run resumes from the jobs that finished. Every executor writes
through `run_group`, so a job's output is the same whichever executor ran it."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from kdbench.config.plugins import plugin_failure
from kdbench.executors.base import Job
from kdbench.util.atomic import atomic_dir, remove_stale_parts, write_text
from kdbench.util.errors import CodeFailed, UserError
from kdbench.util.exit_codes import ExitCode


class JobFailed(UserError):
    """A job that could not finish for a cause only running it shows (out of memory): exit 1, and its
    folder is not left behind."""

    exit_code = ExitCode.FAIL


class OutOfMemory(JobFailed):
    """A job that ran out of memory: beside other jobs it waits and runs again alone (--jobs N);
    alone, the run stops."""


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
    # what its numbers depend on beyond its hash: on a CPU the torch threads (reductions split by thread)
    device: str = ""
    threads: int | None = None


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, job: Job) -> Path:
        return self.root / "jobs" / job.hash

    def done(self, job: Job) -> bool:
        return (self.path(job) / "job.json").is_file()

    def plugin_files_changed(self, current: dict[str, str]) -> list[str]:
        """Of the plugin files a run loaded (path -> sha256), those whose bytes differ from the last
        run on this store that loaded them; records `current` for the next run."""
        path = self.root / "plugin_files.json"
        try:
            seen = json.loads(path.read_text())
            seen = seen if isinstance(seen, dict) else {}
        except (OSError, ValueError):
            seen = {}
        changed = sorted(f for f, sha in current.items() if seen.get(f) not in (None, sha))
        if current and any(seen.get(f) != sha for f, sha in current.items()):
            self.root.mkdir(parents=True, exist_ok=True)
            write_text(path, json.dumps({**seen, **current}, indent=1, sort_keys=True))
        return changed

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
            meta.get("device", ""),
            meta.get("threads"),
        )


def run_group(
    store: Store,
    group: Sequence[Job],
    function,
    *,
    device: str | None = None,
    force: bool = False,
    attempts: int = 1,
    resources: dict | None = None,
) -> None:
    """Run `group` (jobs of one kind) through its function into atomic job folders, each with its
    job.json: the spec, the parents' hashes, the wall time (shared evenly in a batch), the host
    and the attempt that made it, the device and torch threads it ran with (on a cluster, also the
    resources its task reserved), and what the function returned for the job, if anything (a dict
    per job: an evaluation's weights hash). Without
    `force` a job finished meanwhile by another run or task is kept, and this copy discarded."""
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(atomic_dir(store.path(j), replace=force)) for j in group]
        ids = ", ".join(j.id for j in group)
        try:
            made = function(group, outs) or [{}] * len(group)
        except CodeFailed as exc:  # a broken contract: said with the jobs it stopped
            if not str(exc).startswith(tuple(j.id for j in group)):
                raise CodeFailed(f"{ids}: {exc}") from None
            raise
        except Exception as exc:  # noqa: BLE001 - out-of-memory and plugin errors are translated; the rest propagates
            if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # torch's, without torch
                text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise OutOfMemory(
                    f"{ids}: out of memory ({text}); lower the recipe's batch_size, "
                    "evaluate.batch_size or --eval-group, or run on a larger device"
                ) from None
            told = plugin_failure(exc)
            if told is not None:
                raise CodeFailed(f"{ids}: {told}") from None
            raise
        wall = (time.perf_counter() - start) / len(group)
        for j, out, extra in zip(group, outs, made):
            meta = {
                "id": j.id,
                "spec": j.spec,
                "deps": [d.hash for d in j.deps],
                "wall_s": wall,
                "node": socket.gethostname(),
                "attempts": attempts,
                "device": device,
                "threads": torch.get_num_threads() if (torch := sys.modules.get("torch")) else None,
            }
            if resources is not None:
                meta["resources"] = resources
            meta.update(extra)
            (out / "job.json").write_text(json.dumps(meta, indent=1, default=str))


def plan_todo(
    store: Store, jobs: Sequence[Job], force: bool, log, threads: dict[str, int] | None = None
) -> tuple[list[Job], dict[str, JobRecord]]:
    """The distinct jobs still to run, in plan order, and the records of those already done; with
    `threads` (this run's torch threads per job kind), a line for cached CPU jobs made at others."""
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
        if threads is not None and (line := other_threads(records.values(), threads)):
            log(line)
    return todo, records


def other_threads(records, threads: dict[str, int]) -> str | None:
    """A sentence when cached CPU jobs ran at thread counts other than `threads` (per kind): a CPU
    result depends on the thread count (reductions are split by thread), which no hash covers."""
    other = [r for r in records if r.device == "cpu" and r.threads is not None and r.threads != threads[r.kind]]
    if not other:
        return None
    counts = sorted({r.threads for r in other})
    return (
        f"{len(other)} cached CPU job(s) ran at {', '.join(map(str, counts))} torch thread(s), this run at "
        f"{', '.join(f'{k} {v}' for k, v in sorted(threads.items()))}: CPU results depend on the thread count, so "
        "these may differ from a fresh run's by an example here and there (--force recomputes them)"
    )
