"""What an executor is: something that runs a plan's jobs into the job store (store.py) and
returns their records; and how jobs are grouped, the same on every executor. The local executor
(local.py) runs them on this machine (in this process, or with --jobs N in worker processes),
the Ray executor (ray.py) on a cluster."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Job(Protocol):
    """What an executor knows of a job (the pipeline's `plan.Job` is one): its content hash (its
    folder in the store), a readable id, its kind, the spec its job.json records and the jobs it
    depends on."""

    hash: str
    id: str
    kind: str
    spec: dict
    deps: Sequence[Job]


@dataclass(frozen=True)
class JobFunctions:
    """What runs the jobs in this process: per kind, a function(jobs, their output folders) (an
    evaluation group comes whole, the other jobs alone) that may return a dict per job for its
    job.json, and the device they compute on (job.json records it)."""

    by_kind: Mapping[str, Callable[[Sequence[Job], Sequence[Path]], list[dict] | None]]
    device: str | None = None


class WorkerContext(Protocol):
    """What a worker process (the local executor's with --jobs N, a Ray task) receives, pickled:
    everything it needs to run jobs by hash into the store as the driver would (`run_jobs`)."""

    threads: dict[str, int]  # torch threads per job kind
    data_root: str | None
    attempts_dir: Path  # where Ray's tasks note their attempts

    @property
    def environment(self) -> dict[str, str] | None:
        """Variables a worker must have before it imports torch (portable mode), or None."""

    def run_jobs(
        self, kind: str, hashes: Sequence[str], force: bool, resources: dict | None = None, attempt: int = 1
    ) -> list[str]:
        """Run the jobs `hashes` (all of `kind`) unless already done; their hashes."""


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
