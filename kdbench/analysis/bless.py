"""Blessing a run as the gate's baseline: the run-directory contract again, checked and made small.

A baseline is itself a run directory (manifest.json, metrics.csv, per_example.npz, agreement.csv),
so the gate reads both sides with the same code. Blessing reads the run through every check the
gate applies, refuses one that lacks what the gate needs, and rewrites it with write_run, whose
per-example file is bit-packed (one bit per example per metrics row), so a smoke suite's baseline
is tens of kilobytes. The manifest keeps its provenance plus a `blessed` note saying from where.
With two or more seeds per model, `seed_spread.csv` records each metric's spread between seeds
(the retraining noise the gate's method-level test weighs a retrained run against).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pandas as pd

from kdbench.analysis.comparability import REQUIRED
from kdbench.results.checks import load_run
from kdbench.results.contract import ResultsError
from kdbench.results.write import write_run
from kdbench.util.atomic import atomic_dir

SPREAD = "seed_spread.csv"


def bless(run_dir, out_dir) -> tuple[Path, int]:
    """Copy `run_dir` to `out_dir` as a baseline (replacing an old one whole); returns (path, bytes)."""
    run = load_run(run_dir)
    for key in REQUIRED:
        if not run.manifest.get(key):
            raise ResultsError(
                run.path / "manifest.json",
                f"lacks '{key}'; a baseline without it could never be checked for comparability",
            )
    out_dir = Path(out_dir)
    refuse_to_replace(out_dir)
    manifest = dict(run.manifest)
    manifest["blessed"] = {
        "from": str(run.path),
        "at": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }
    spread = seed_spread(run.metrics)
    with atomic_dir(out_dir) as tmp:
        write_run(tmp, manifest, run.metrics, run.example_index, run.correct, run.agreement)
        load_run(tmp)  # what we commit must read back
        if len(spread):
            spread.to_csv(tmp / SPREAD, index=False, float_format="%.6g")
    return out_dir, sum(f.stat().st_size for f in out_dir.iterdir() if f.is_file())


def refuse_to_replace(out_dir: Path) -> None:
    """Blessing replaces the output directory whole, so it must be absent or a baseline we wrote:
    `-o results` must never wipe every result."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ResultsError(out_dir, "exists and is not a directory; give a new directory for the baseline")
    try:
        blessed = "blessed" in json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        blessed = False
    if not blessed:
        raise ResultsError(
            out_dir,
            "exists and is not a baseline kdbench blessed; refusing to replace it "
            "(give a new directory, or remove this one yourself)",
        )


def seed_spread(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per model and metric with two or more seeds: seeds, mean accuracy, sample sd between seeds."""
    g = metrics.groupby(["model", "group", "condition", "level"], sort=False)["accuracy"]
    out = g.agg(seeds="count", mean="mean", sd=lambda a: a.std(ddof=1)).reset_index()
    return out[out["seeds"] >= 2].reset_index(drop=True)
