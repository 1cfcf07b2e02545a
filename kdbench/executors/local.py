"""The local executor: jobs in plan order, one at a time in this process, or with --jobs N up to N
ready jobs at once in worker processes on this machine (sharing its GPU, or splitting its CPU
threads). A job runs when the jobs it depends on have finished; the numbers are those of a
one-at-a-time run at the same threads per job."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

from kdbench.executors.base import EVAL_GROUP, Job, JobFunctions, WorkerContext, job_groups
from kdbench.executors.store import JobFailed, OutOfMemory, Store, plan_todo, run_group
from kdbench.util.atomic import remove_stale_parts
from kdbench.util.progress import elapsed


class LocalExecutor:
    """Runs jobs on this machine. Up to `group_size` consecutive evaluation jobs run together
    (evaluation: every perturbed batch made once for the models of a group, and only a group's
    models held at once). With `jobs` > 1 (and the `context` worker processes rebuild the run
    from), up to `jobs` ready groups run at once, each in its own process at `threads` torch
    threads. Neither grouping nor `jobs` changes a number."""

    def __init__(
        self,
        store: Store,
        group_size: int = EVAL_GROUP,
        log: Callable[[str], None] = print,
        jobs: int = 1,
        context: WorkerContext | None = None,
        threads: dict[str, int] | None = None,
    ):
        if jobs > 1 and context is None:
            raise ValueError("jobs > 1 needs the WorkerContext its worker processes start from")
        self.store, self.group_size, self.log = store, group_size, log
        self.jobs, self.context, self.threads = jobs, context, threads

    def run(self, jobs, functions: JobFunctions, *, force=False):
        todo, records = plan_todo(self.store, jobs, force, self.log, self.threads)
        groups = job_groups(todo, self.group_size)
        if self.jobs > 1 and len(groups) > 1:
            self._run_processes(groups, len(todo), records, force)
            return [records[j.hash] for j in jobs]
        i, began, total = 0, time.perf_counter(), len(todo)
        for group in groups:
            done, i = i, i + len(group)
            self.log(
                f"[{done + 1}{f'-{i}' if len(group) > 1 else ''}/{total}] running {', '.join(j.id for j in group)} "
                f"(elapsed {elapsed(time.perf_counter() - began)})"
            )
            start = time.perf_counter()
            run_group(self.store, group, functions.by_kind[group[0].kind], device=functions.device, force=force)
            for j in group:
                records[j.hash] = self.store.record(j, cached=False)
            self.log(f"[{i}/{total}] done in {elapsed(time.perf_counter() - start)}")
        return [records[j.hash] for j in jobs]

    # ------------------------------------------------------------------ --jobs N
    def _run_processes(self, groups: list[list[Job]], total: int, records: dict, force: bool) -> None:
        """Start every group whose parents are done, in plan order, while fewer than `jobs` run. A group
        that runs out of memory beside others, or whose worker the system killed (the OOM killer), goes
        back to the queue and runs again alone: it waits, it does not crash; alone, it ends the run."""
        made_by = {j.hash: g for g, group in enumerate(groups) for j in group}
        pending, finished, alone = list(range(len(groups))), set(), set()
        running: dict[Future, tuple[int, bool]] = {}  # future -> (group, started in alone mode)
        began, ndone = time.perf_counter(), 0

        def ready(g: int) -> bool:
            return all(d.hash not in made_by or made_by[d.hash] in finished for j in groups[g] for d in j.deps)

        def start(pool, g: int) -> None:
            group, solo = groups[g], g in alone
            pending.remove(g)
            fut = pool.submit(self.context.run_jobs, group[0].kind, [j.hash for j in group], force)
            running[fut] = (g, solo)
            self.log(
                f"running {', '.join(j.id for j in group)} ("
                + ("alone" if solo else f"{len(running)} at once")
                + f", {ndone}/{total} done, elapsed {elapsed(time.perf_counter() - began)})"
            )

        def requeue_alone(g: int) -> None:
            alone.add(g)
            pending.append(g)
            pending.sort()

        pool = _pool(self.jobs)
        try:
            while pending or running:
                if not any(solo for _, solo in running.values()):
                    waiting = [g for g in pending if g in alone and ready(g)]
                    if waiting:  # nothing new starts before it; it starts when the others are done
                        if not running:
                            start(pool, waiting[0])
                    else:
                        for g in [g for g in pending if ready(g)]:
                            if len(running) >= self.jobs:
                                break
                            start(pool, g)
                if not running:  # cannot happen with a plan's acyclic graph; never wait forever
                    raise RuntimeError(f"jobs {[groups[g][0].id for g in pending]} wait on jobs that never run")
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    g, solo = running.pop(fut)
                    try:
                        fut.result()
                    except (OutOfMemory, BrokenProcessPool) as exc:
                        ids = ", ".join(j.id for j in groups[g])
                        if solo:
                            if isinstance(exc, OutOfMemory):
                                raise
                            raise JobFailed(
                                f"{ids}: its worker process died while it ran alone (killed by the system, "
                                "perhaps for lack of memory); lower the recipe's batch_size or evaluate.batch_size"
                            ) from None
                        broken |= isinstance(exc, BrokenProcessPool)
                        why = "ran out of memory" if isinstance(exc, OutOfMemory) else "lost its worker process"
                        self.log(f"{ids}: {why} beside other jobs; it waits and runs again alone")
                        requeue_alone(g)
                        continue
                    finished.add(g)
                    ndone += len(groups[g])
                    for j in groups[g]:
                        records[j.hash] = self.store.record(j, cached=False)
                    self.log(
                        f"[{ndone}/{total}] done {', '.join(j.id for j in groups[g])} "
                        f"(elapsed {elapsed(time.perf_counter() - began)})"
                    )
                if broken:  # every job of a broken pool fails with it: each is queued again above
                    for g, _ in running.values():
                        requeue_alone(g)
                    running.clear()
                    _stop(pool)
                    pool = _pool(self.jobs)
        except BaseException:
            _stop(pool)
            # what the workers stopped above had begun: their part folders (their pids are gone now)
            remove_stale_parts(self.store.root / "jobs")
            raise
        _stop(pool, wait=True)
        lost = remove_stale_parts(self.store.root / "jobs")
        if lost:
            self.log(f"removed {len(lost)} unfinished job folder(s) of lost worker processes")


def _pool(jobs: int) -> ProcessPoolExecutor:
    # spawn: CUDA cannot be used in a forked child, and a fresh interpreter inherits no thread pools
    return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)


def _stop(pool: ProcessPoolExecutor, wait: bool = False) -> None:
    """Shut the pool down; unless `wait`, its workers are killed first (Ctrl-C, a failed job)."""
    if not wait:
        # ProcessPoolExecutor has no public way to stop running workers before Python 3.14
        for proc in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                proc.kill()
                proc.join(10)
    pool.shutdown(wait=wait, cancel_futures=True)


def _init_worker() -> None:
    # Ctrl-C reaches the whole process group: the driver alone handles it, and stops the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # several bars in one terminal would garble: workers print their per-epoch lines only
    os.environ["KDBENCH_PROGRESS"] = "0"
    if sys.platform.startswith("linux"):
        # a worker dies with its driver (kill -9), rather than finish jobs no one will read
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
