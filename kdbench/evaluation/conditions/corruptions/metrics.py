"""Summary statistics of corruption robustness, computed from metrics.csv rows.

Definitions (Hendrycks & Dietterich, 2019), with E the top-1 error (1 - accuracy):

    mean corruption accuracy   mean accuracy over the benchmark's 15 corruptions x 5 severities
                               (RobustBench's convention for CIFAR-10-C)
    CE_c                       sum_s E(f, c, s) / sum_s E(ref, c, s)
    relative CE_c              sum_s (E(f, c, s) - E(f, clean)) / sum_s (E(ref, c, s) - E(ref, clean))
    mCE, relative mCE          means of CE_c and relative CE_c over the 15 corruptions

CE values are reported in percent, as the paper does: 100 is the reference model's level, lower
is more robust. The reference is a model of the same suite, named by the `corruptions` entry's
`reference_model`; a model is compared with the reference run of the same seed when there is
one, else with the mean of the reference's seeds (a teacher usually has a single seed).

ImageNet-C's published mCE is relative to AlexNet, whose errors are a constant table. Given as
the entry's `published_errors` ({corruption: [E at severities 1..5]}), they give `ce_published`
per corruption and `mce_published` over the benchmark's corruptions the table and the model both
have at all five severities, `cells` saying how many.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from kdbench.evaluation.conditions.corruptions import BENCHMARK
from kdbench.evaluation.conditions.corruptions.core import SEVERITIES
from kdbench.util.lazy import lazy
from kdbench.util.names import corruption_name

pd = lazy("pandas")

SUMMARY_COLUMNS = ["model", "seed", "statistic", "corruption", "value", "cells"]


def _corruption_rows(metrics: pd.DataFrame, names) -> pd.DataFrame:
    m = metrics[metrics["group"] == "corruption"].copy()
    m["condition"] = m["condition"].map(corruption_name)  # "c:fog" in metrics.csv, "fog" here
    m = m[m["condition"].isin(list(names))]
    m["severity"] = pd.to_numeric(m["level"].astype(str), errors="coerce")
    m = m[m["severity"].isin(list(SEVERITIES))]
    m["error"] = 1.0 - m["accuracy"].astype(float)
    return m


def _row(model, seed, statistic: str, corruption: str, value, cells) -> dict:
    """One summary.csv row."""
    return dict(
        model=model, seed=int(seed), statistic=statistic, corruption=corruption, value=float(value), cells=int(cells)
    )


def _clean_error(metrics: pd.DataFrame) -> pd.Series:
    clean = metrics[metrics["condition"] == "clean"]
    return (1.0 - clean.groupby(["model", "seed"])["accuracy"].mean()).rename("clean_error")


def corruption_summary(
    metrics: pd.DataFrame, reference_model: str | None = None, *, corruptions: Iterable[str] = BENCHMARK
) -> pd.DataFrame:
    """Long table of summary statistics per (model, seed), from rows with the metrics.csv
    contract's columns (model, seed, condition, group, level, accuracy; clean rows for the
    relative CE).

    Columns: model, seed, statistic, corruption, value, cells.
      statistic 'mean_corruption_accuracy' (corruption 'all'): mean accuracy over the
          (corruption, severity) cells present; `cells` says how many (75 for the full set);
      statistic 'ce' and 'relative_ce' per corruption, and 'mce' / 'relative_mce' (corruption
          'all'), in percent, only with a `reference_model`, each CE summing over the severities
          that the model and the reference both have for that corruption (a corruption whose
          severities differ between them is left out); `cells` counts the (corruption, severity)
          cells used: 75 is Hendrycks & Dietterich's mCE over the 15 x 5.
    Nothing is returned for models without corruption rows. Raises ValueError when the reference
    model has no corruption rows."""
    names = list(corruptions)
    rows = _corruption_rows(metrics, names)
    out: list[dict] = []
    for (model, seed), g in rows.groupby(["model", "seed"], sort=True):
        out.append(
            _row(
                model,
                seed,
                "mean_corruption_accuracy",
                "all",
                float(g["accuracy"].mean()),
                int(len(g)),
            )
        )
    if reference_model is None:
        return pd.DataFrame(out, columns=SUMMARY_COLUMNS)
    ref = rows[rows["model"] == reference_model]
    if ref.empty:
        raise ValueError(
            f"reference model '{reference_model}' has no corruption results "
            f"(models with some: {', '.join(sorted(rows['model'].unique())) or 'none'})"
        )
    clean = _clean_error(metrics)
    for (model, seed), g in rows.groupby(["model", "seed"], sort=True):
        same_seed = ref[ref["seed"] == seed]
        r = same_seed if not same_seed.empty else ref
        r_err = r.groupby(["condition", "severity"])["error"].mean()
        ref_clean = clean[clean.index.get_level_values("model") == reference_model]
        if not same_seed.empty and (reference_model, seed) in ref_clean.index:
            r_clean = float(ref_clean.loc[(reference_model, seed)])
        else:
            r_clean = float(ref_clean.mean()) if len(ref_clean) else np.nan
        f_clean = float(clean.get((model, seed), np.nan))
        ce, rel, cells = [], [], 0
        for c in names:
            e_f = g[g["condition"] == c].groupby("severity")["error"].mean()
            ref_levels = set(r_err.loc[c].index) if c in r_err.index.get_level_values(0) else set()
            if e_f.empty or set(e_f.index) != ref_levels:
                continue  # CE compares sums over the same severities; skip a corruption that differs
            e_r = r_err.loc[c].loc[e_f.index]
            ce_c = 100.0 * e_f.sum() / e_r.sum() if e_r.sum() > 0 else np.nan
            denom = (e_r - r_clean).sum()
            rel_c = 100.0 * (e_f - f_clean).sum() / denom if denom > 0 else np.nan
            ce.append(ce_c)
            rel.append(rel_c)
            cells += len(e_f)
            out.append(_row(model, seed, "ce", c, float(ce_c), len(e_f)))
            out.append(
                _row(
                    model,
                    seed,
                    "relative_ce",
                    c,
                    float(rel_c),
                    len(e_f),
                )
            )
        if ce:
            out.append(_row(model, seed, "mce", "all", float(np.mean(ce)), cells))
            out.append(_row(model, seed, "relative_mce", "all", float(np.mean(rel)), cells))
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def published_mce(metrics: pd.DataFrame, errors: dict[str, list[float]], *, corruptions=BENCHMARK) -> pd.DataFrame:
    """CE_c = sum_s E(f, c, s) / sum_s E_published(c, s) in percent, and their mean over the
    corruptions with all five severities on both sides (statistics ce_published, mce_published)."""
    names = [c for c in corruptions if c in errors]
    rows = _corruption_rows(metrics, names)
    out: list[dict] = []
    for (model, seed), g in rows.groupby(["model", "seed"], sort=True):
        ce = []
        for c in names:
            e_f = g[g["condition"] == c].groupby("severity")["error"].mean()
            if sorted(e_f.index) != list(SEVERITIES):
                continue  # the published CE sums all five severities
            ce_c = 100.0 * float(e_f.sum()) / float(np.sum(errors[c]))
            ce.append(ce_c)
            out.append(_row(model, seed, "ce_published", c, ce_c, 5))
        if ce:
            mce = float(np.mean(ce))
            out.append(
                _row(
                    model,
                    seed,
                    "mce_published",
                    "all",
                    mce,
                    5 * len(ce),
                )
            )
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def mce_table(metrics: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """Wide per-(model, seed) table for the report: model, seed, mean_corruption_accuracy, and
    with a reference also mce and relative_mce (percent; NaN for a model lacking a full
    corruption). Without a reference there is no mCE, and no mce column. The report calls this."""
    summary = corruption_summary(metrics, reference)
    keep = summary[summary["corruption"] == "all"]
    wide = keep.pivot_table(index=["model", "seed"], columns="statistic", values="value", aggfunc="first").reset_index()
    wide.columns.name = None
    columns = ["model", "seed", "mean_corruption_accuracy"] + (["mce", "relative_mce"] if reference else [])
    return wide.reindex(columns=columns)
