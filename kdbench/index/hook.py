"""The runs index as a run hook (pipeline.hooks.RunHook): a finished run is recorded in
`out`/runs.sqlite, as `kdbench index` would. An index that cannot be written costs a line, never
the run (its folder is complete and can be indexed later)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from kdbench.index.database import FILE_NAME, IndexFileError, index_runs


@dataclass(frozen=True)
class IndexHook:
    out: str

    def started(self, suite, stamp: str, say) -> None:
        pass

    def model_log(self, job, runner, say):
        return None

    def stopped(self, say) -> None:
        pass

    def finished(self, run_dir: Path, plan, store, records, runner, say) -> None:
        try:
            index_runs(Path(self.out) / FILE_NAME, [run_dir], log=say)
        except (IndexFileError, sqlite3.Error, OSError) as exc:
            say(f"not indexed: {exc} (the run is complete; kdbench index {self.out} records it later)")

    def manifest(self) -> dict:
        return {}
