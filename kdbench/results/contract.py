"""The run-directory contract: its files and their columns (written by write.py, read by read.py).

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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kdbench.util.errors import UserError
from kdbench.util.levels import level_str

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
