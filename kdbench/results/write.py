"""Writing a run directory (`write_run`): every file the contract names, atomically, arrays stored
so that the same run gives the same bytes."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from kdbench.results.contract import (
    AGREEMENT_COLUMNS,
    DIAGNOSTIC_COLUMNS,
    METRIC_COLUMNS,
    MODEL_METRIC_COLUMNS,
    SUMMARY_COLUMNS,
    TRAINING_COLUMNS,
)
from kdbench.util.atomic import atomic_path, write_text
from kdbench.util.levels import level_str


def write_run(
    path,
    manifest: dict,
    metrics: pd.DataFrame,
    example_index,
    correct,
    agreement: pd.DataFrame,
    summary: pd.DataFrame | None = None,
    diagnostics: pd.DataFrame | None = None,
    model_metrics: pd.DataFrame | None = None,
    model_metric_values: dict | None = None,
    training: pd.DataFrame | None = None,
) -> Path:
    """Write the files, each atomically; manifest last, so its presence marks a complete run."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    metrics = metrics.reset_index(drop=True).copy()
    missing = [c for c in METRIC_COLUMNS if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics lack columns {missing}")
    metrics["level"] = [level_str(v) for v in metrics["level"]]
    correct = np.asarray(correct, dtype=bool)
    example_index = np.asarray(example_index, dtype=np.int64)
    if correct.shape != (len(metrics), len(example_index)):
        raise ValueError(f"correct has shape {correct.shape}, expected {(len(metrics), len(example_index))}")
    with atomic_path(path / "metrics.csv") as tmp:
        metrics[METRIC_COLUMNS + [c for c in metrics.columns if c not in METRIC_COLUMNS]].to_csv(tmp, index=False)
    with atomic_path(path / "per_example.npz") as tmp:
        with open(tmp, "wb") as fh:
            savez_stable(
                fh,
                example_index=example_index,
                correct=np.packbits(correct, axis=1),
                model=_text(metrics["model"]),
                seed=metrics["seed"].astype(np.int64).to_numpy(),
                condition=_text(metrics["condition"]),
                level=_text(metrics["level"]),
            )
    with atomic_path(path / "agreement.csv") as tmp:
        agreement.reindex(columns=AGREEMENT_COLUMNS).to_csv(tmp, index=False)
    if summary is not None:
        with atomic_path(path / "summary.csv") as tmp:
            summary.reindex(columns=SUMMARY_COLUMNS).to_csv(tmp, index=False)
    if diagnostics is not None:
        with atomic_path(path / "diagnostics.csv") as tmp:
            diagnostics.reindex(columns=DIAGNOSTIC_COLUMNS).to_csv(tmp, index=False)
    if model_metrics is not None:
        out = model_metrics.reindex(columns=MODEL_METRIC_COLUMNS)
        out["level"] = [level_str(v) for v in out["level"]]
        with atomic_path(path / "model_metrics.csv") as tmp:
            out.to_csv(tmp, index=False, float_format="%.10g")
        if model_metric_values:
            rows = sorted(model_metric_values)
            if rows[-1] >= len(out) or any(len(model_metric_values[r]) != len(example_index) for r in rows):
                raise ValueError("model_metric_values must map model_metrics rows to one value per example")
            with atomic_path(path / "model_metrics.npz") as tmp, open(tmp, "wb") as fh:
                savez_stable(
                    fh,
                    row=np.asarray(rows, dtype=np.int64),
                    values=np.stack([np.asarray(model_metric_values[r], dtype=np.float32) for r in rows]),
                )
    if training is not None and len(training):
        with atomic_path(path / "training.csv") as tmp:
            training.reindex(columns=TRAINING_COLUMNS).to_csv(tmp, index=False, float_format="%.10g")
    write_text(path / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return path


def savez_stable(fh, **arrays) -> None:
    """`np.savez_compressed`, but byte-for-byte the same for the same arrays: numpy stamps each
    member with the time of writing, so two runs with equal results would differ in their bytes."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)


def _text(column: pd.Series) -> np.ndarray:
    """A fixed-width unicode array: loadable with allow_pickle=False (object arrays are not)."""
    return np.array([str(v) for v in column], dtype=str)
