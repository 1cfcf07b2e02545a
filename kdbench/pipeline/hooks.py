"""What the pipeline calls around a run without knowing who listens: a run hook (experiment
tracking, the runs index) hears that the run started, gives a log to each model that trains,
hears that the run stopped or finished, and adds its line to the manifest. The hooks are built
above the pipeline (kdbench.api) and travel, pickled, to the workers that train models."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

Say = Callable[[str], None]


class ModelLog(Protocol):
    """One model's log while it trains: a row per epoch, then closed."""

    def epoch(self, row: dict) -> None: ...

    def close(self, ok: bool = True) -> None: ...


class RunHook(Protocol):
    def started(self, suite, stamp: str, say: Say) -> None:
        """Before the first job; `stamp` is the run's start time, as its id."""

    def model_log(self, job, runner, say: Say) -> ModelLog | None:
        """The log of the model `job` trains (runner: pipeline.jobs.JobRunner), or None."""

    def stopped(self, say: Say) -> None:
        """The run stopped: a job failed, or Ctrl-C."""

    def finished(self, run_dir: Path, plan, store, records, runner, say: Say) -> None:
        """The run directory is written and complete."""

    def manifest(self) -> dict:
        """What the run's manifest records of this hook (merged into it), or {}."""


class Logs:
    """The logs the hooks give one model, as one."""

    def __init__(self, hooks, job, runner, say: Say):
        self.logs = [log for h in hooks if (log := h.model_log(job, runner, say)) is not None]

    def epoch(self, row: dict) -> None:
        for log in self.logs:
            log.epoch(row)

    def close(self, ok: bool = True) -> None:
        for log in self.logs:
            log.close(ok)
