"""Reading a run directory back (`read_run`): every file the contract names, each checked for its
columns and types as it is read; results/checks.py checks what every reader relies on."""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from kdbench.results.contract import (
    AGREEMENT_COLUMNS,
    DIAGNOSTIC_COLUMNS,
    FILES,
    METRIC_COLUMNS,
    MODEL_METRIC_COLUMNS,
    SUMMARY_COLUMNS,
    TRAINING_COLUMNS,
    ResultsError,
    Run,
)
from kdbench.util.names import NAME, RESULTS_FORMAT, corruption_condition


def read_run(path) -> Run:
    path = Path(path)
    if not path.is_dir():
        raise ResultsError(path, "not a run directory (it does not exist or is not a directory)")
    for name in FILES:
        if not (path / name).is_file():
            raise ResultsError(path / name, "missing; a run directory holds " + ", ".join(FILES))
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(path / "manifest.json", f"unreadable JSON ({exc})") from None
    metrics = _read_csv(path / "metrics.csv", METRIC_COLUMNS, {"level": str, "model": str, "condition": str})
    agreement = _read_csv(path / "agreement.csv", AGREEMENT_COLUMNS, {"model": str, "teachers": str})
    try:
        with np.load(path / "per_example.npz", allow_pickle=False) as z:
            example_index = z["example_index"]
            packed = z["correct"]
            keys = {k: z[k] for k in ("model", "seed", "condition", "level")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        if "pickle" in str(exc):  # never pass on numpy's hint to load it unsafely
            raise ResultsError(
                path / "per_example.npz",
                "holds Python objects, which kdbench never unpickles; a run's per_example.npz holds plain arrays only",
            ) from None
        raise ResultsError(path / "per_example.npz", f"unreadable ({exc})") from None
    n = len(example_index)
    if packed.ndim == 2 and packed.shape[0] != len(metrics):
        # a metrics.csv cut at a line end still parses; only the row counts tell
        raise ResultsError(
            path / "metrics.csv",
            f"has {len(metrics)} rows but per_example.npz has {packed.shape[0]}: one of the two is "
            "truncated (or they come from different runs)",
        )
    if packed.ndim != 2 or packed.shape[1] != (n + 7) // 8:
        raise ResultsError(
            path / "per_example.npz", f"correct has shape {packed.shape}, expected ({len(metrics)}, {(n + 7) // 8})"
        )
    for key, values in keys.items():
        if not np.array_equal(values.astype(str), metrics[key].astype(str).to_numpy()):
            raise ResultsError(path / "per_example.npz", f"its '{key}' keys do not match metrics.csv row by row")
    fmt = (
        manifest.get("results_format", 1) if isinstance(manifest, dict) else 1
    )  # a non-mapping manifest: the caller's check
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise ResultsError(path / "manifest.json", f"results_format must be a whole number >= 1, found {fmt!r}")
    if fmt > RESULTS_FORMAT:
        raise ResultsError(
            path / "manifest.json",
            f"results format {fmt} was written by a newer kdbench; this one reads formats 1 to "
            f"{RESULTS_FORMAT}: upgrade kdbench",
        )
    if fmt < 2:  # format 1 named corruption rows by the corruption alone; read them as format 2 names them
        corr = metrics["group"] == "corruption"
        metrics.loc[corr, "condition"] = metrics.loc[corr, "condition"].map(corruption_condition)
    correct = np.unpackbits(packed, axis=1, count=n).astype(bool)
    if not np.array_equal(correct.sum(axis=1), metrics["correct"].to_numpy()):
        raise ResultsError(path / "per_example.npz", "per-example correctness does not add up to metrics.csv 'correct'")
    summary = None
    if (path / "summary.csv").is_file():
        summary = _read_csv(path / "summary.csv", SUMMARY_COLUMNS, {"model": str, "statistic": str, "corruption": str})
    diagnostics = None
    if (path / "diagnostics.csv").is_file():
        # `norm` came with the L2 threat model: older runs' checks with an epsilon are Linf ones
        diagnostics = _read_csv(
            path / "diagnostics.csv", DIAGNOSTIC_COLUMNS[:-1], {"model": str, "check": str, "eps": str, "norm": str}
        )
        if "norm" not in diagnostics.columns:
            diagnostics["norm"] = np.where(diagnostics["eps"] != "", "Linf", "")
        try:
            diagnostics["flagged"] = (
                diagnostics["flagged"].map({"True": True, "False": False, True: True, False: False}).astype(bool)
            )
            diagnostics["threshold"] = pd.to_numeric(diagnostics["threshold"], errors="coerce")
        except (ValueError, TypeError) as exc:
            raise ResultsError(path / "diagnostics.csv", f"'flagged' must be True or False ({exc})") from None
    model_metrics = None
    if (path / "model_metrics.csv").is_file():
        model_metrics = _read_csv(
            path / "model_metrics.csv",
            MODEL_METRIC_COLUMNS,
            {"model": str, "condition": str, "level": str, "metric": str, "reference": str},
        )
        model_metrics["temperature"] = pd.to_numeric(model_metrics["temperature"].replace("", np.nan), errors="coerce")
    values = _read_model_metric_values(path, model_metrics, n)
    training = None
    if (path / "training.csv").is_file():
        training = _read_csv(path / "training.csv", TRAINING_COLUMNS, {"model": str, "metric": str, "method": str})
    return Run(
        path,
        manifest,
        metrics,
        example_index,
        correct,
        agreement,
        summary,
        diagnostics,
        model_metrics,
        values,
        training,
    )


def _read_model_metric_values(path: Path, model_metrics, n: int) -> dict[int, np.ndarray] | None:
    file = path / "model_metrics.npz"
    if model_metrics is None or not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:
            rows, values = z["row"], z["values"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ResultsError(file, f"unreadable ({exc})") from None
    if values.shape != (len(rows), n) or (len(rows) and (rows.min() < 0 or rows.max() >= len(model_metrics))):
        raise ResultsError(
            file,
            f"values {values.shape} for rows up to {rows.max() if len(rows) else '-'} do not fit "
            f"model_metrics.csv ({len(model_metrics)} rows) and {n} examples",
        )
    with warnings.catch_warnings():  # a row with no finite value (a network that outputs NaN) means NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(values.astype(np.float64), axis=1) if len(rows) else np.zeros(0)
    csv = model_metrics["value"].to_numpy(dtype=float)[rows]
    if not np.allclose(means, csv, rtol=1e-4, atol=1e-5, equal_nan=True):
        raise ResultsError(file, "per-example values do not average to model_metrics.csv 'value' (from another run?)")
    return dict(zip(rows.tolist(), values))


def _read_csv(file: Path, columns, dtypes) -> pd.DataFrame:
    try:
        df = pd.read_csv(file, dtype=dtypes, keep_default_na=False, na_values=[])
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ResultsError(file, f"unreadable CSV ({exc})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ResultsError(file, f"missing columns {missing} (truncated or not a kdbench file?)")
    try:
        for col in ("seed", "n", "correct", "agree", "cells"):
            if col in df.columns:
                df[col] = pd.to_numeric(df[col], errors="raise").astype(np.int64)
        for col in ("accuracy", "agreement", "value"):
            if col in df.columns:
                df[col] = pd.to_numeric(df[col], errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        raise ResultsError(file, f"non-numeric value where a number belongs ({exc}); truncated?") from None
    for col in ("model", "teachers"):
        if col in df.columns:
            values = set(df[col].astype(str))  # thousands of rows, a handful of names
            names = {n for v in values for n in v.split("+") if n} if col == "teachers" else values
            bad = sorted(n for n in names if not re.match(NAME, n))
            if bad:
                raise ResultsError(
                    file,
                    f"'{col}' holds {bad[0][:80]!r}, which is not a model name (letters, digits, _ . "
                    "-, starting with a letter or digit)",
                )
    return df
