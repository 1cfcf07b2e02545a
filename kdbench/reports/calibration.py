"""The report's "Calibration and fidelity" table for a compare pair, from model_metrics.csv.

Rows: each metric under clean data, each noise level, each corruption severity (the mean over
the corruptions at that severity) and each attack and eps; baseline and distilled as mean +- sd over seeds, and
the difference of the means. Fidelity compares both twins with the distilled student's teacher.
Metrics that are means over examples (all but ECE) get the method-level test accuracy gets, on
their per-example values (model_metrics.npz): paired when the twins share seeds, else unpaired,
with Holm's correction over the table's tested rows; ECE, a function of bins, stays descriptive.
"""

from __future__ import annotations

import math

import numpy as np

from kdbench.analysis import stats
from kdbench.util.format import level_text, pvalue
from kdbench.util.lazy import lazy
from kdbench.util.names import norm_of

pd = lazy("pandas")

CALIBRATION_NOTE = (
    "Mean ± sd over seeds; Δ = distilled − baseline with its 95% CI and p from the method-level test "
    "accuracy gets (seeds and "
    "test examples both vary, two-sided), on per-example values; p Holm: Holm's correction over the rows of this "
    "table that have a p (read it, not p, when scanning the table for differences); ECE has no "
    "per-example form and is descriptive. Mean confidence above accuracy: overconfident. Saliency: cosine of the input "
    "gradients of the true-class logit on the first clean examples, with the teacher, and (distilled only) with the "
    "baseline twin of the same seed. Transfer rate: of the adversarial examples crafted on the source (the teacher) "
    "that fool it, the share that also fool the student. ECE: 15 equal-width confidence bins; "
    "NLL in nats; Brier summed over classes (0 to 2); agreement: same top-1 class as the teacher "
    "(%); KL(teacher ‖ student) "
    "at T = 1 and at the distillation temperature. Both twins are measured against the distilled student's teacher, "
    "on the inputs the teacher was scored on. Lower is better except agreement and saliency."
)
ORDER = {"clean": 0, "noise": 1, "corruption": 2, "attack": 3}
METRICS = (
    "ece",
    "nll",
    "brier",
    "confidence",
    "agreement",
    "kl_teacher",
    "saliency_teacher",
    "saliency_twin",
    "transfer_rate",
)
PERCENT = {"agreement", "transfer_rate"}


def summarised(mm, model: str):
    """Per seed, metric (and temperature), condition: corruption cells averaged per severity."""
    m = mm[mm["model"] == model].copy()
    m["temperature"] = m["temperature"].fillna(0.0)
    corr = m["group"] == "corruption"
    m.loc[corr, "condition"] = "corruptions"
    return (
        m.groupby(["seed", "metric", "temperature", "group", "condition", "level"], sort=False)["value"]
        .mean()
        .reset_index()
    )


def calibration_table(run, baseline: str, distilled: str):
    mm = run.model_metrics
    if mm is None or mm.empty or not {baseline, distilled} <= set(mm["model"]):
        return None
    a, b = summarised(mm, baseline), summarised(mm, distilled)
    keys = ["metric", "temperature", "group", "condition", "level"]
    ga = a.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    gb = b.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    # outer: saliency_twin exists for the distilled side only (its cosine with the baseline)
    t = ga.merge(gb, on=keys, suffixes=("_base", "_dist"), how="outer")
    t = t[t["metric"].isin(METRICS)]
    t["diff"] = t["mean_dist"] - t["mean_base"]
    tests = [_test(run, baseline, distilled, *k) for k in t[keys].itertuples(index=False)]
    t["ci_lo"] = [x.ci[0] if x else math.nan for x in tests]
    t["ci_hi"] = [x.ci[1] if x else math.nan for x in tests]
    t["p"] = [x.pvalue if x else math.nan for x in tests]
    t["p_holm"] = stats.holm(t["p"].to_numpy(dtype=float))  # the family: this pair's tested rows
    t["order"] = [
        (METRICS.index(m), temp, ORDER.get(g, 9), float(lv) if lv not in ("", None) else 0.0)
        for m, temp, g, lv in zip(t["metric"], t["temperature"], t["group"], t["level"])
    ]
    return t.sort_values("order").drop(columns="order").reset_index(drop=True)


def per_example_matrix(run, model: str, metric: str, temperature: float, group: str, condition: str, level: str):
    """(seeds, (S, N)) per-example values of a metric for one model; a corruption severity is the
    per-example mean over its corruptions. None when a seed lacks them."""
    mm, values = run.model_metrics, run.model_metric_values
    if mm is None or not values:
        return None
    temp = mm["temperature"].fillna(0.0)
    hit = (
        (mm["model"] == model)
        & (mm["metric"] == metric)
        & (temp == temperature)
        & (mm["group"] == group)
        & (mm["level"] == level)
    )
    if group != "corruption":
        hit &= mm["condition"] == condition
    rows = mm[hit]
    seeds = sorted(rows["seed"].unique())
    out = []
    for seed in seeds:
        pos = np.flatnonzero(hit.to_numpy() & (mm["seed"] == seed).to_numpy())
        if not len(pos) or any(int(r) not in values for r in pos):
            return None
        out.append(np.mean([values[int(r)] for r in pos], axis=0, dtype=np.float64))  # NaN stays NaN
    return (seeds, np.stack(out)) if out else None


def _test(run, baseline: str, distilled: str, metric, temperature, group, condition, level):
    a = per_example_matrix(run, baseline, metric, temperature, group, condition, level)
    b = per_example_matrix(run, distilled, metric, temperature, group, condition, level)
    if a is None or b is None or a[1].shape[1] != b[1].shape[1]:
        return None
    keep = ~(np.isnan(a[1]).any(0) | np.isnan(b[1]).any(0))  # saliency: its subset of examples
    if not keep.any():
        return None
    if a[0] == b[0]:
        return stats.method_test_paired(a[1][:, keep], b[1][:, keep])
    return stats.method_test_unpaired(a[1][:, keep], b[1][:, keep])


def _value(metric: str, v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{100 * v:.1f}" if metric in PERCENT else f"{v:.3f}"


def calibration_rows(run, baseline: str, distilled: str) -> list[dict]:
    t = calibration_table(run, baseline, distilled)
    if t is None:
        return []
    out = []
    for r in t.itertuples(index=False):
        name = (
            r.metric
            + (" (%)" if r.metric in PERCENT else "")
            + (f" T={r.temperature:g}" if r.metric == "kl_teacher" else "")
        )
        where = (
            "clean"
            if r.group == "clean"
            else f"{r.condition} σ={level_text('noise', r.level)}"
            if r.group == "noise"
            else f"{r.condition} ε={level_text('attack', r.level, norm_of(r.condition))} (crafted on the source)"
            if r.condition.startswith("transfer")
            else f"{r.condition} ε={level_text('attack', r.level, norm_of(r.condition))} (own adversarial inputs)"
            if r.group == "attack"
            else f"corruptions severity {r.level}"
        )

        def cell(mean, sd, n, metric=r.metric):
            return _value(metric, mean) + (f" ± {_value(metric, sd)}" if n > 1 and not math.isnan(sd) else "")

        def signed(v, metric=r.metric):
            return (f"{100 * v:+.1f}" if metric in PERCENT else f"{v:+.3f}").replace("-", "−")

        diff = "—" if math.isnan(r.diff) else signed(r.diff)
        ci = "—" if math.isnan(r.ci_lo) else f"[{signed(r.ci_lo)}, {signed(r.ci_hi)}]"
        out.append(
            {
                "metric": name,
                "where": where,
                "baseline": cell(r.mean_base, r.std_base, r.count_base),
                "distilled": cell(r.mean_dist, r.std_dist, r.count_dist),
                "diff": diff,
                "ci": ci,
                "p": "—" if math.isnan(r.p) else pvalue(r.p),
                "p_holm": "—" if math.isnan(r.p_holm) else pvalue(r.p_holm),
            }
        )
    return out
