"""The names and values a run logs, the same in every backend.

- parameters: the model's job specification flattened with dots (`recipe.lr`, `method.temperature`);
- per epoch (step = epoch): the training curves' names (training.csv: each loss term, `loss`,
  `train_accuracy`, `lr`);
- final (step = the last epoch): `accuracy/<condition>[/<level>]` from metrics.csv,
  `<metric>/<condition>[/<level>]` from model_metrics.csv and `corruption/<statistic>[/<corruption>]`
  from summary.csv; a value that is not finite (a statistic that could not be formed) is left out.

MLflow accepts only letters, digits and `_ - . / space` in a name, so every other character
becomes `_` in every backend (`c:glass_blur` logs as `c_glass_blur`).
"""

from __future__ import annotations

import json
import math
import re

from kdbench.training.loop import epoch_metrics

MAX_PARAM = 500  # characters: MLflow's limit for a parameter's value in its older releases


def key(*parts) -> str:
    text = "/".join(str(p) for p in parts if p is not None and str(p) != "" and not _nan(p))
    return re.sub(r"[^\w./\- ]", "_", text)


def params_of(spec: dict) -> dict[str, str]:
    """A job's specification as flat `a.b.c` -> text pairs (lists as JSON)."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            flat[key(prefix)] = text[:MAX_PARAM]

    walk("", spec)
    return flat


def epoch_values(row: dict) -> tuple[int, dict[str, float]]:
    """(step, values) of one row of history.json."""
    return int(row["epoch"]), {key(k): float(v) for k, v in epoch_metrics(row).items()}


def final_values(run, model: str, seed: int) -> dict[str, float]:
    """A model's final metrics from a read run directory (kdbench.results.contract.Run)."""
    out: dict[str, float] = {}
    m = run.metrics[(run.metrics["model"] == model) & (run.metrics["seed"] == seed)]
    for r in m.itertuples():
        out[key("accuracy", r.condition, r.level)] = float(r.accuracy)
    mm = run.model_metrics
    if mm is not None:
        for r in mm[(mm["model"] == model) & (mm["seed"] == seed)].itertuples():
            temperature = None if _nan(r.temperature) else f"T{r.temperature:g}"
            out[key(r.metric, r.condition, r.level, r.reference, temperature)] = float(r.value)
    s = run.summary
    if s is not None:
        for r in s[(s["model"] == model) & (s["seed"] == seed)].itertuples():
            out[key("corruption", r.statistic, r.corruption)] = float(r.value)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)
