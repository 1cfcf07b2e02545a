"""The CI regression gate: a run against a blessed baseline, metric by metric.

A metric is one (model, condition, level). It regresses only when both hold:
- its accuracy fell by more than the tolerance (percentage points; per condition group,
  condition or condition:level, with a default), and
- a one-sided test says the fall is real, after Holm's correction over every gated metric.

Which test follows from what changed, read from the weights hashes both manifests record
(never from the outcome):
- the same networks (every seed's weights hash equal: an evaluation-only change, or a
  bit-identical rerun): the exact one-sided McNemar test, seed k against seed k, pooled over the
  seed pairs. Pooling is exact here: with the networks fixed, each discordant example is a fair
  coin when nothing changed.
- retrained networks (any hash differs, or none was recorded): the method-level test of
  kdbench.analysis.stats (training randomness and test examples both vary), paired by seed when both runs
  trained the same seeds, else unpaired with the seed spread pooled over both sides, so a
  one-seed run can be tested against a baseline of several.
A metric whose test could not have detected a fall the size of its tolerance (its MDD at 80%
power, at the Bonferroni level alpha / m of the m gated tests, exceeds the tolerance, or no seed
spread exists to test against) is INCONCLUSIVE, never a silent pass: exit 0 by default, exit 4
with `--strict`.

Exit codes: 0 no regression; 1 a regression; 2 bad input (raised as ResultsError); 3 the runs
are not comparable (NotComparable: different evaluation specification, test examples or
missing metrics), saying what differs; 4 inconclusive metrics under --strict.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kdbench.analysis.comparability import NotComparable, comparability_problems, require_provenance
from kdbench.analysis.compare import compare_runs
from kdbench.analysis.tolerances import Tolerances, settings
from kdbench.reports.format import DASH, mdd_pp, pct, pvalue, signed_pp
from kdbench.reports.markdown import md_escape, table
from kdbench.results.checks import load_run
from kdbench.results.contract import Run
from kdbench.util.errors import UserError
from kdbench.util.exit_codes import ExitCode
from kdbench.util.names import is_worst_case


class GateUsageError(UserError, ValueError):
    """A bad flag value (exit 2)."""


@dataclass
class GateResult:
    table: pd.DataFrame
    exit_code: int
    markdown: str
    tolerances: Tolerances
    alpha: float
    notes: list[str] = field(default_factory=list)
    # --identical: what is not bit-identical to the baseline (empty: everything is); None: not asked
    not_identical: list[str] | None = None


def machine_notes(base: dict, run: dict) -> list[str]:
    """Where the two runs were computed, when that differs: results are deterministic on one
    machine, device and thread count only, so a small difference may come from there."""
    differ = []
    for key, what in (("device_name", "device"), ("cpu", "CPU"), ("threads", "torch threads")):
        if base.get(key) is not None and run.get(key) is not None and base.get(key) != run.get(key):
            differ.append(f"{what} {base[key]} in the baseline, {run[key]} in the run")
    modes = [_mode(m) for m in (base, run)]
    if modes == ["portable", "portable"]:
        if differ:  # the set-ups differ, but portable mode computes the same bytes on any x86-64 CPU
            return [
                "Both runs were computed in portable mode ("
                + "; ".join(differ)
                + "): the networks and results should be identical on any x86-64 CPU."
            ]
        return []
    if modes[0] != modes[1]:
        differ.append(f"reproducible: {modes[0]} in the baseline, {modes[1]} in the run")
    if not differ:
        return []
    return [
        "The two runs were computed on different set-ups ("
        + "; ".join(differ)
        + "). Results repeat exactly only on one "
        "machine, device and thread count; differences within the tolerance may come from that alone."
    ]


def not_identical(base: Run, run: Run) -> list[str]:
    """Why the run's networks are not the baseline's, bit for bit: each network whose weights hash
    differs (or is not recorded), and each metric whose per-example results differ on the same
    networks; empty when every network and result is identical."""
    from kdbench.analysis.compare import _rows_by_key, network_identity

    out = []
    identity = network_identity(base, run)
    for model in sorted(identity):
        if identity[model] != "same":
            what = "not recorded" if identity[model] == "unknown" else "differ"
            out.append(f"{model}: weights hashes {what} (the network was trained differently)")
    for model in sorted(set(base.metrics["model"]) ^ set(run.metrics["model"])):
        out.append(f"{model}: in one run only")
    br, rr = _rows_by_key(base), _rows_by_key(run)
    for key in sorted(set(br) & set(rr)):
        if identity.get(key[0]) != "same":
            continue
        for seed in sorted(set(br[key]) & set(rr[key])):
            a, b = base.correct_rows([br[key][seed]]), run.correct_rows([rr[key][seed]])
            if a.shape != b.shape or not np.array_equal(a, b):
                model, _, condition, level = key
                changed = int((a != b).sum()) if a.shape == b.shape else "all"
                out.append(
                    f"{model} seed {seed}, {condition}{' ' + level if level else ''}: {changed} per-example "
                    "result(s) differ on the same network"
                )
    return out


def _mode(manifest: dict) -> str:
    mode = manifest.get("reproducible")
    return mode.get("mode", "machine") if isinstance(mode, dict) else "machine"


def evaluate(
    base: Run, run: Run, tolerances: Tolerances, alpha: float, strict: bool = False, identical: bool = False
) -> GateResult:
    require_provenance(base)
    require_provenance(run)
    problems = comparability_problems(base, run)
    if problems:
        raise NotComparable(problems)
    t, structural = compare_runs(base, run, "less", alpha=alpha)
    if structural:
        raise NotComparable(structural)
    t["tolerance_pp"] = [tolerances.lookup(g, c, lv) for g, c, lv in zip(t["group"], t["condition"], t["level"])]
    gated = t["status"] == "both"
    falls = t["diff"] < -t["tolerance_pp"] / 100 - 1e-12
    significant = t["p_holm"] <= alpha
    # the test could not have seen a fall the size of the tolerance: say so rather than pass
    undecidable = t["p"].isna() | ~(t["mdd"] <= t["tolerance_pp"] / 100 + 1e-12)
    t["verdict"] = np.select(
        [
            t["status"] == "run only",
            t["status"] == "summary",
            gated & falls & significant,
            gated & undecidable,
            gated & falls,
        ],
        ["new, not gated", "summary, not gated", "REGRESSION", "INCONCLUSIVE", "fell, not significant"],
        default="ok",
    )
    differ = not_identical(base, run) if identical else None
    if differ == []:  # the same networks and the same per-example results: nothing can have fallen
        t.loc[gated, "verdict"] = "identical"
    if (t["verdict"] == "REGRESSION").any() or differ:
        code = ExitCode.FAIL
    elif strict and (t["verdict"] == "INCONCLUSIVE").any():
        code = ExitCode.INCONCLUSIVE
    else:
        code = ExitCode.OK
    notes = machine_notes(base.manifest, run.manifest)
    result = GateResult(t, code, "", tolerances, alpha, notes, differ)
    result.markdown = gate_markdown(result, base.path, run.path)
    return result


def gate_paths(
    run_dir, baseline_dir, tolerance_args=None, alpha=None, strict: bool = False, identical: bool = False
) -> GateResult:
    """Load both (ResultsError on bad input), settle tolerances and alpha, and judge."""
    base = load_run(baseline_dir)
    run = load_run(run_dir)
    try:
        tol, a = settings(run, tolerance_args, alpha)
    except ValueError as exc:
        raise GateUsageError(str(exc)) from None
    return evaluate(base, run, tol, a, strict, identical)


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
