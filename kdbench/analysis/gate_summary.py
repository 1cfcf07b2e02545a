"""The gate's verdict as Markdown for a CI step summary or a pull-request comment, and its
appending to GitHub's step summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from kdbench.util.format import DASH, mdd_pp, pct, pvalue, signed_pp
from kdbench.util.markdown import md_escape, table
from kdbench.util.names import is_worst_case

if TYPE_CHECKING:
    from kdbench.analysis.gate import GateResult


def gate_markdown(result: GateResult, base_path, run_path) -> str:
    t = result.table
    n_reg = int((t["verdict"] == "REGRESSION").sum())
    n_inc = int((t["verdict"] == "INCONCLUSIVE").sum())
    n_gated = int((t["status"] == "both").sum())
    not_same = bool(result.not_identical)
    head = "FAIL" if n_reg or not_same else "INCONCLUSIVE" if n_inc else "PASS"
    counts = f"{n_reg} regression{'s' if n_reg != 1 else ''}" + (f", {n_inc} inconclusive" if n_inc else "")
    tol = result.tolerances
    tol_text = f"{tol.default:g} pp" + (
        "".join(f", {k}: {v:g} pp" for k, v in tol.by_key.items()) if tol.by_key else ""
    )
    lines = [
        f"## kdbench gate: {head} ({counts} in {n_gated} metrics{'; networks not identical' if not_same else ''})",
        "",
        md_escape(
            f"Run {run_path} against baseline {base_path}. A metric regresses when its accuracy falls by more than "
            f"its tolerance ({tol_text}) and a one-sided test is significant at α = {result.alpha:g} after Holm's "
            "correction "
            f"over the {n_gated} metrics. The test follows the networks: the same networks (equal weights hashes) "
            "re-evaluated get "
            "the exact McNemar test pooled over seed pairs; retrained networks get the method-level test (seeds and "
            "test "
            "examples both vary). A metric is INCONCLUSIVE when that test could not have detected a fall the size of "
            "its "
            "tolerance (MDD at 80% power and the Bonferroni level α / m of the m tests above the tolerance, or too few "
            "seeds); "
            "`kdbench gate --strict` fails on it (exit 4)."
        ),
        "",
    ]
    if result.not_identical:
        lines += [
            "**NOT IDENTICAL**: the gate expected every network and per-example result to equal the baseline's, "
            "bit for bit (`--identical`), and these do not:",
            "",
            *(f"- {md_escape(d)}" for d in result.not_identical),
            "",
        ]
    elif result.not_identical == []:
        lines += ["Identical: every network's weights and every per-example result equal the baseline's.\n"]
    lines += [md_escape(note) + "\n" for note in result.notes]
    if n_inc:
        inc = t[t["verdict"] == "INCONCLUSIVE"]
        lines += [
            "Inconclusive (the test cannot tell a fall of the tolerance's size): "
            + md_escape(
                "; ".join(
                    f"{m} {lbl} (MDD {mdd_pp(d)} pp, tolerance {tl:g} pp)"
                    for m, lbl, d, tl in zip(inc["model"], inc["label"], inc["mdd"], inc["tolerance_pp"])
                )
            ),
            "",
        ]
    worst = t[t["condition"].map(is_worst_case) & (t["status"] == "both")] if "condition" in t.columns else t.iloc[0:0]
    if len(worst):
        lines += [
            "Robust accuracy (worst case over the attacks, per example): "
            + md_escape(
                "; ".join(
                    f"{m} {lbl} {pct(b, 2)} → {pct(r, 2)} %"
                    for m, lbl, b, r in zip(worst["model"], worst["label"], worst["base_acc"], worst["run_acc"])
                )
            ),
            "",
        ]
    if n_reg:
        reg = t[t["verdict"] == "REGRESSION"]
        lines += [
            "Regressions: "
            + md_escape(
                "; ".join(f"{m} {lbl} {signed_pp(d)} pp" for m, lbl, d in zip(reg["model"], reg["label"], reg["diff"]))
            ),
            "",
        ]
    body = []
    # inconclusive first
    first = t.assign(_k=(t["verdict"] != "INCONCLUSIVE").astype(int)).sort_values("_k", kind="stable")
    for r in first.itertuples(index=False):
        verdict = f"**{r.verdict}**" if r.verdict in ("REGRESSION", "INCONCLUSIVE") else r.verdict
        body.append(
            [
                r.model,
                r.label,
                r.test,
                pct(r.base_acc, 2),
                pct(r.base_sd, 2) if r.seeds_base > 1 else DASH,
                pct(r.run_acc, 2),
                signed_pp(r.diff, 2),
                f"{r.tolerance_pp:g}",
                mdd_pp(r.mdd),
                pvalue(r.p),
                pvalue(r.p_holm),
                verdict,
            ]
        )
    header = [
        "model",
        "metric",
        "test",
        "baseline %",
        "baseline seed sd",
        "run %",
        "Δ pp",
        "tolerance pp",
        "MDD pp",
        "p (one-sided)",
        "p Holm",
        "verdict",
    ]
    tbl = table(header, body, ["l", "l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "l"])
    return "\n".join(lines + [tbl, ""])


def append_step_summary(markdown: str, env=os.environ) -> Path | None:
    """Append to $GITHUB_STEP_SUMMARY when GitHub Actions sets it."""
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip("\n") + "\n\n")
    return path
