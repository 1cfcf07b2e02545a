"""Blessing a run as the gate's baseline: the run-directory contract again, checked and made small.

A baseline is itself a run directory (manifest.json, metrics.csv, per_example.npz, agreement.csv),
so the gate reads both sides with the same code. Blessing reads the run through every check the
gate applies, refuses one that lacks what the gate needs, and rewrites it with write_run, whose
per-example file is bit-packed (one bit per example per metrics row), so a smoke suite's baseline
is tens of kilobytes. The manifest keeps its provenance plus a `blessed` note saying from where.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from .atomic import atomic_dir
from .gate import REQUIRED
from .report.runs import load_run
from .results import FILES, ResultsError, write_run


def bless(run_dir, out_dir) -> tuple[Path, int]:
    """Copy `run_dir` to `out_dir` as a baseline (replacing an old one whole); returns (path, bytes)."""
    run = load_run(run_dir)
    for key in REQUIRED:
        if not run.manifest.get(key):
            raise ResultsError(run.path / "manifest.json", f"lacks '{key}'; a baseline without it could never be checked for comparability")
    out_dir = Path(out_dir)
    manifest = dict(run.manifest)
    manifest["blessed"] = {
        "from": str(run.path),
        "at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    with atomic_dir(out_dir) as tmp:
        write_run(tmp, manifest, run.metrics, run.example_index, run.correct, run.agreement)
        load_run(tmp)  # what we commit must read back
    return out_dir, sum((out_dir / f).stat().st_size for f in FILES)
