"""The report's "Calibration and fidelity" table for a compare pair, from model_metrics.csv.

Rows: each metric under clean data, each noise level and each corruption severity (the mean
over the corruptions at that severity); baseline and distilled as mean +- sd over seeds, and
the difference of the means. Fidelity compares both twins with the distilled student's teacher.
No test is run on these differences yet: they are descriptive.
"""

from __future__ import annotations

import math

from ..lazy import lazy
from .format import level_text

pd = lazy("pandas")

CALIBRATION_NOTE = ("Mean ± sd over seeds; Δ = distilled − baseline, descriptive (no test yet). ECE: 15 equal-width confidence bins; "
                    "NLL in nats; Brier summed over classes (0 to 2); agreement: same top-1 class as the teacher (%); KL(teacher ‖ student) "
                    "at T = 1 and at the distillation temperature. Both twins are measured against the distilled student's teacher, "
                    "on the inputs the teacher was scored on. Lower is better except agreement.")
ORDER = {"clean": 0, "noise": 1, "corruption": 2}
METRICS = ("ece", "nll", "brier", "agreement", "kl_teacher")
PERCENT = {"agreement"}


def summarised(mm, model: str):
    """Per seed, metric (and temperature), condition: corruption cells averaged per severity."""
    m = mm[mm["model"] == model].copy()
    m["temperature"] = m["temperature"].fillna(0.0)
    corr = m["group"] == "corruption"
    m.loc[corr, "condition"] = "corruptions"
    return m.groupby(["seed", "metric", "temperature", "group", "condition", "level"], sort=False)["value"].mean().reset_index()


def calibration_table(run, baseline: str, distilled: str):
    mm = run.model_metrics
    if mm is None or mm.empty or not {baseline, distilled} <= set(mm["model"]):
        return None
    a, b = summarised(mm, baseline), summarised(mm, distilled)
    keys = ["metric", "temperature", "group", "condition", "level"]
    ga = a.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    gb = b.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    t = ga.merge(gb, on=keys, suffixes=("_base", "_dist"))
    t = t[t["metric"].isin(METRICS)]
    t["diff"] = t["mean_dist"] - t["mean_base"]
    t["order"] = [(METRICS.index(m), temp, ORDER.get(g, 9), float(lv) if lv not in ("", None) else 0.0)
                  for m, temp, g, lv in zip(t["metric"], t["temperature"], t["group"], t["level"])]  # fmt: skip
    return t.sort_values("order").drop(columns="order").reset_index(drop=True)


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
        name = r.metric + (" (%)" if r.metric in PERCENT else "") + (f" T={r.temperature:g}" if r.metric == "kl_teacher" else "")
        where = "clean" if r.group == "clean" else f"{r.condition} σ={level_text('noise', r.level)}" if r.group == "noise" else f"corruptions severity {r.level}"

        def cell(mean, sd, n, metric=r.metric):
            return _value(metric, mean) + (f" ± {_value(metric, sd)}" if n > 1 and not math.isnan(sd) else "")

        diff = "—" if math.isnan(r.diff) else (f"{100 * r.diff:+.1f}" if r.metric in PERCENT else f"{r.diff:+.3f}").replace("-", "−")
        out.append({"metric": name, "where": where, "baseline": cell(r.mean_base, r.std_base, r.count_base),
                    "distilled": cell(r.mean_dist, r.std_dist, r.count_dist), "diff": diff})  # fmt: skip
    return out
