"""The headline comparison as one tidy table: one row per compare pair and headline metric.

The rows and numbers are the report's headline tables (clean, mean corruption accuracy, noise per
sigma, attacks per epsilon; corruption-by-severity cells stay in the JSON export), with the same
method-level tests, Holm-adjusted p-values, verdicts and masking flags. Accuracies and differences
are fractions in [0, 1], as in metrics.csv.
"""

from __future__ import annotations

from kdbench.reports.pairs import headline_groups
from kdbench.reports.tables import ReportData, masking_warning
from kdbench.util.lazy import lazy

pd = lazy("pandas")

COLUMNS = [
    "distilled",
    "baseline",
    "role",
    "method",
    "design",
    "metric",
    "group",
    "condition",
    "level",
    "baseline_seeds",
    "distilled_seeds",
    "baseline_acc",
    "baseline_sd",
    "distilled_acc",
    "distilled_sd",
    "diff",
    "diff_sd",
    "ci_lo",
    "ci_hi",
    "p",
    "p_holm",
    "mdd",
    "verdict",
    "masking",
]


def headline_table(data: ReportData) -> pd.DataFrame:
    rows = []
    for pair in data.pairs:
        t = pd.concat([rows for _, rows in headline_groups(pair.table)])
        for _, r in t.iterrows():
            masking = (
                masking_warning(data.masking, (pair.distilled, pair.baseline), r["level"], r["condition"])
                if r["group"] == "attack"
                else ""
            )
            rows.append(
                {
                    "distilled": pair.distilled,
                    "baseline": pair.baseline,
                    "role": pair.role,
                    "method": pair.method,
                    "design": pair.design,
                    "metric": r["label"],
                    "group": r["group"],
                    "condition": r["condition"],
                    "level": r["level"],
                    "baseline_seeds": int(r["base_seeds"]),
                    "distilled_seeds": int(r["dist_seeds"]),
                    "baseline_acc": r["base_acc"],
                    "baseline_sd": r["base_sd"],
                    "distilled_acc": r["dist_acc"],
                    "distilled_sd": r["dist_sd"],
                    "diff": r["diff"],
                    "diff_sd": r["diff_sd"],
                    "ci_lo": r["ci_lo"],
                    "ci_hi": r["ci_hi"],
                    "p": r["p"],
                    "p_holm": r.get("p_holm"),
                    "mdd": r.get("mdd"),
                    "verdict": r.get("verdict") or "",
                    "masking": masking,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)
