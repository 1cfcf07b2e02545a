"""Experiment tracking as a run hook (pipeline.hooks.RunHook): the run-level records when the run
starts, stops or finishes, and each model's log while it trains."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdbench.tracking.logs import ModelLogs, abort, finish, start
from kdbench.tracking.session import Tracking, check_installed


@dataclass
class TrackingHook:
    backends: tuple[str, ...]
    root: str  # the run's --out, absolute
    tracking: Tracking | None = None  # set when the run starts; what workers receive

    def __post_init__(self):
        check_installed(self.backends)  # before any work: exit 2 naming the extra to install

    def started(self, suite, stamp: str, say) -> None:
        self.tracking = start(Tracking.start(self.backends, Path(self.root).resolve(), suite.name, stamp), suite, say)

    def model_log(self, job, runner, say):
        return ModelLogs(self.tracking, job, runner, say) if self.tracking is not None else None

    def stopped(self, say) -> None:
        if self.tracking is not None:
            abort(self.tracking, say)

    def finished(self, run_dir: Path, plan, store, records, runner, say) -> None:
        if self.tracking is not None:
            finish(self.tracking, plan, store, records, run_dir, runner, say)

    def manifest(self) -> dict:
        if self.tracking is None:
            return {}
        return {"tracking": {"backends": list(self.tracking.backends), "session": self.tracking.session}}
