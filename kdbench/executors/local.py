"""The local executor: every job in this process, in plan order."""

from __future__ import annotations

import time
from typing import Callable, Sequence

from kdbench.executors.base import EVAL_GROUP, job_groups
from kdbench.executors.store import Store, plan_todo, run_group
from kdbench.util.progress import elapsed


class LocalExecutor:
    """Runs jobs in plan order in this process; up to `group_size` consecutive jobs of a batched
    kind run together (evaluation: every perturbed batch made once for the models of a group, and
    only a group's models held at once). Grouping changes no number."""

    def __init__(
        self,
        store: Store,
        batched: Sequence[str] = ("evaluate",),
        group_size: int = EVAL_GROUP,
        log: Callable[[str], None] = print,
    ):
        self.store, self.batched, self.group_size, self.log = store, set(batched), group_size, log

    def run(self, jobs, handlers, *, force=False):
        todo, records = plan_todo(self.store, jobs, force, self.log)
        i, began, total = 0, time.perf_counter(), len(todo)
        for group in job_groups(todo, self.group_size, self.batched):
            done, i = i, i + len(group)
            self.log(
                f"[{done + 1}{f'-{i}' if len(group) > 1 else ''}/{total}] running {', '.join(j.id for j in group)} "
                f"(elapsed {elapsed(time.perf_counter() - began)})"
            )
            start = time.perf_counter()
            run_group(self.store, group, handlers[group[0].kind], force=force)
            for j in group:
                records[j.hash] = self.store.record(j, cached=False)
            self.log(f"[{i}/{total}] done in {elapsed(time.perf_counter() - start)}")
        return [records[j.hash] for j in jobs]
