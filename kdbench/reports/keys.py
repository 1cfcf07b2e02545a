"""The metrics of a run in reading order, the per-model accuracy tables, and fast lookup of a
metric's per-example results."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kdbench.analysis import mcnemar
from kdbench.results.checks import is_per_example
from kdbench.results.contract import Run
from kdbench.util.format import metric_label
from kdbench.util.levels import level_value
from kdbench.util.names import BENCHMARK_CORRUPTIONS, corruption_condition, corruption_name, metric_rank

KEY = ["group", "condition", "level"]
MEAN_CORRUPTION = "mean_corruption"


def metric_keys(metrics: pd.DataFrame) -> pd.DataFrame:
    """Metric keys in reading order: clean, noise, attacks, corruptions; conditions as first met; levels ascending."""
    keys = metrics[KEY].drop_duplicates().copy()
    first = {c: i for i, c in enumerate(dict.fromkeys(metrics["condition"]))}
    keys["_rank"] = [metric_rank(g, c, level_value(lv), first) for g, c, lv in keys[KEY].itertuples(index=False)]
    keys = keys.sort_values(["_rank", "group"], kind="stable").drop(columns=["_rank"]).reset_index(drop=True)
    keys["label"] = [metric_label(g, c, lv) for g, c, lv in keys[KEY].itertuples(index=False)]
    return keys


class MetricIndex:
    """(model, seed, group, condition, level) -> metrics row, and per-model seed lists."""

    def __init__(self, run: Run):
        m = run.metrics
        self.run = run
        self.row = {k: i for i, k in enumerate(zip(m["model"], m["seed"], m["group"], m["condition"], m["level"]))}
        self.seeds = {model: sorted(set(g["seed"])) for model, g in m.groupby("model", sort=False)}

    def matrix(self, model: str, seeds, key) -> np.ndarray | None:
        rows = [self.row.get((model, s, *key)) for s in seeds]
        if any(r is None for r in rows):
            return None
        return self.run.correct_rows(rows)

    def values(self, model: str, seeds, key) -> np.ndarray | None:
        """The accuracy column's values (for summary rows, whose per-example bits mean nothing)."""
        rows = [self.row.get((model, s, *key)) for s in seeds]
        if not rows or any(r is None for r in rows):
            return None
        return self.run.metrics["accuracy"].to_numpy(float)[rows]


def per_seed_table(run: Run, keys: pd.DataFrame) -> pd.DataFrame:
    m = run.metrics.copy()
    lo, hi = mcnemar.wilson_interval(m["correct"].to_numpy(), m["n"].to_numpy())
    summary = ~m["group"].map(is_per_example).to_numpy(bool)
    m["lo"], m["hi"] = np.where(summary, np.nan, lo), np.where(summary, np.nan, hi)
    m = m.merge(keys, on=KEY, how="left")
    return m[["model", "role", "method", "arch", "seed", *KEY, "label", "n", "correct", "accuracy", "lo", "hi"]]


def accuracy_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per model and metric: mean over seeds, sample sd (nan for one seed), Wilson interval for one seed."""
    g = per_seed.groupby(["model", "role", "method", "arch", *KEY, "label"], sort=False)
    out = g.agg(
        seeds=("seed", "nunique"),
        accuracy=("accuracy", "mean"),
        sd=("accuracy", lambda a: a.std(ddof=1) if len(a) > 1 else np.nan),
        lo=("lo", "first"),
        hi=("hi", "first"),
    ).reset_index()
    multi = out["seeds"] > 1
    out.loc[multi, ["lo", "hi"]] = np.nan  # a Wilson interval describes one model, not a mean over seeds
    return out


def corruption_set(keys: pd.DataFrame) -> tuple[list[str], str]:
    """The corruption conditions the mean corruption accuracy averages (metrics.csv names), and its label."""
    present = list(dict.fromkeys(keys.loc[keys["group"] == "corruption", "condition"]))
    if not present:
        return [], ""
    plain = {corruption_name(c) for c in present}
    if set(BENCHMARK_CORRUPTIONS) <= plain:
        return [corruption_condition(c) for c in BENCHMARK_CORRUPTIONS], "corruptions: mean of the 15"
    if plain <= set(BENCHMARK_CORRUPTIONS):
        return present, f"corruptions: mean of {len(present)} of the 15"
    return present, f"corruptions: mean of {len(present)}"


def corruption_matrix(idx: MetricIndex, keys: pd.DataFrame, names: list[str], model: str, seeds) -> np.ndarray | None:
    """(S, N) per-example share of corruption conditions a model gets right; None if any is missing."""
    ck = keys[(keys["group"] == "corruption") & keys["condition"].isin(names)][KEY].itertuples(index=False)
    mats = [idx.matrix(model, seeds, tuple(k)) for k in ck]
    if not mats or any(mat is None for mat in mats):
        return None
    return np.mean([mat.astype(float) for mat in mats], axis=0)
