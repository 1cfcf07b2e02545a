"""The run-directory contract: write it and read it, nothing else.

    <run>/manifest.json     provenance: versions, commit, device, resolved suite, jobs, wall times
    <run>/metrics.csv       one row per (model, seed, condition, level): METRIC_COLUMNS; `n` is
                            how many examples it covers, the first n of example_index (all of
                            them unless the condition has its own n; results format 3)
    <run>/per_example.npz   example_index (N,) int64: test-set indices in evaluation order;
                            correct (R, ceil(N/8)) uint8: np.packbits of each metrics.csv row's
                            per-example correctness, row r <-> metrics.csv data row r (False
                            past the row's n);
                            model, seed, condition, level (R,): the row keys again, for checking
    <run>/agreement.csv     teacher-student agreement on clean test data: AGREEMENT_COLUMNS
    <run>/diagnostics.csv   only when models were attacked: gradient-masking checks, DIAGNOSTIC_COLUMNS
                            (model, seed, check, eps, value, threshold, flagged, norm)
    <run>/summary.csv       only when corruptions ran: numbers derived from metrics.csv rows
                            (mean corruption accuracy, CE, mCE, relative CE/mCE): SUMMARY_COLUMNS
    <run>/model_metrics.csv calibration (nll, brier, confidence, ece; every scored condition, attacks
                            on the model's own adversarial inputs), fidelity to the teacher
                            (agreement, kl_teacher; model-independent conditions), saliency and
                            transfer_rate, per model, seed, condition and level: MODEL_METRIC_COLUMNS
                            (absent in runs written before it existed)
    <run>/model_metrics.npz the per-example values of the model metrics that are means over
                            examples (all but ece): row (K,) int64, a model_metrics.csv data row;
                            values (K, N) float32, in example_index order, NaN where a metric
                            covers fewer examples (saliency: the first evaluate.saliency); absent
                            in older runs
    <run>/training.csv      per-epoch training curves of every model trained here: TRAINING_COLUMNS
                            (each named loss term, `loss` their sum, `train_accuracy`, `lr`; absent
                            when nothing was trained, and in older runs)

`level` is written as text: '' for conditions without levels (clean), the severity for
corruptions ('1'..'5'), and format(x, '.6g') for sigmas and epsilons in [0, 1] pixel units.
"""

from __future__ import annotations

import json
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kdbench.util.atomic import atomic_path, write_text
from kdbench.util.errors import UserError
from kdbench.util.levels import level_str
from kdbench.util.names import NAME, RESULTS_FORMAT, corruption_condition

METRIC_COLUMNS = ["model", "role", "method", "arch", "seed", "condition", "group", "level", "n", "correct", "accuracy"]
AGREEMENT_COLUMNS = ["model", "seed", "teachers", "n", "agree", "agreement"]
ROLES = ("teacher", "baseline", "distilled", "control")
SUMMARY_COLUMNS = ["model", "seed", "statistic", "corruption", "value", "cells"]
DIAGNOSTIC_COLUMNS = ["model", "seed", "check", "eps", "value", "threshold", "flagged", "norm"]
MODEL_METRIC_COLUMNS = [
    "model",
    "role",
    "method",
    "arch",
    "seed",
    "condition",
    "group",
    "level",
    "metric",
    "value",
    "n",
    "reference",
    "temperature",
]
TRAINING_COLUMNS = ["model", "role", "method", "seed", "epoch", "metric", "value"]
FILES = ("manifest.json", "metrics.csv", "per_example.npz", "agreement.csv")


class ResultsError(UserError, ValueError):
    """A run directory that is missing, unreadable or inconsistent; names the file."""

    def __init__(self, path, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


@dataclass
class Run:
    path: Path
    manifest: dict
    metrics: pd.DataFrame
    example_index: np.ndarray
    correct: np.ndarray  # (R, N) bool, row r <-> metrics row r
    agreement: pd.DataFrame
    summary: pd.DataFrame | None = None
    diagnostics: pd.DataFrame | None = None
    model_metrics: pd.DataFrame | None = None
    model_metric_values: dict[int, np.ndarray] | None = None  # model_metrics row position -> (N,) values
    training: pd.DataFrame | None = None  # per-epoch training curves, TRAINING_COLUMNS

    def correct_rows(self, rows) -> np.ndarray:
        """(len(rows), n) per-example correctness of metrics rows of one metric, over the first n
        examples they all cover (every evaluated one, unless a condition took its own n)."""
        n = int(self.metrics["n"].to_numpy()[rows].min()) if len(rows) else self.correct.shape[1]
        return self.correct[rows, :n]

    def correct_for(self, model: str, seed: int, condition: str, level="") -> np.ndarray:
        m = self.metrics
        hit = np.flatnonzero(
            (m["model"] == model)
            & (m["seed"] == int(seed))
            & (m["condition"] == condition)
            & (m["level"] == level_str(level))
        )
        if len(hit) != 1:
            raise KeyError(f"{self.path}: no single row for {model} seed {seed} {condition} {level!r}")
        return self.correct_rows(hit)[0]


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
