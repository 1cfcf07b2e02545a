"""The run directory: claimed by one run alone, and `latest` pointed at it once it is written."""

from __future__ import annotations

import os
from pathlib import Path


def claim_run_dir(parent: Path, run_id: str) -> tuple[str, Path]:
    """A run directory of our own: created here, never one another run (started in the same
    second) is writing to; the id gets a suffix -2, -3, ... when taken."""
    parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 1000):
        candidate = run_id if k == 1 else f"{run_id}-{k}"
        try:
            (parent / candidate).mkdir()
            return candidate, parent / candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"{parent}: 999 runs started in the same second")


def point_latest(run_dir: Path) -> None:
    """`latest` beside the runs names this one (a link, replaced atomically; a folder a user made
    there is left alone)."""
    latest = run_dir.parent / "latest"
    if latest.is_symlink() or not latest.exists():
        tmp = run_dir.parent / f".latest.{os.getpid()}.tmp"  # per process: two runs may finish together
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, latest)
