"""What an executor is: something that runs a plan's jobs into the job store (store.py) and
returns their records; and how jobs are grouped, the same on every executor. The local executor
(local.py) runs them on this machine (in this process, or with --jobs N in worker processes),
the Ray executor (ray.py) on a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from kdbench.pipeline.plan import Job

# kind -> handler(jobs, output_dirs); evaluation jobs come in groups (job_groups), the others alone
Handlers = dict[str, Callable[[Sequence[Job], Sequence[Path]], None]]

KINDS = ("teacher", "student", "evaluate")  # the plan's job kinds; each may get its own threads or resources
EVAL_GROUP = 8  # evaluation jobs scored together by default: a perturbed batch is made once per group of models


def job_groups(todo: Sequence[Job], size: int) -> list[list[Job]]:
    """`todo` in plan order, cut into the groups an executor runs together: up to `size` consecutive
    evaluation jobs, every other job alone (the same groups on either executor)."""
    groups: list[list[Job]] = []
    for j in todo:
        last = groups[-1] if groups else None
        if last and j.kind == "evaluate" and last[0].kind == j.kind and len(last) < size:
            last.append(j)
        else:
            groups.append([j])
    return groups
