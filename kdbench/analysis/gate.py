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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kdbench.analysis.comparability import NotComparable, comparability_problems, require_provenance
from kdbench.analysis.compare import compare_runs
from kdbench.analysis.gate_summary import gate_markdown
from kdbench.analysis.tolerances import Tolerances, settings
from kdbench.results.checks import load_run
from kdbench.results.contract import Run
from kdbench.util.errors import UserError
from kdbench.util.exit_codes import ExitCode


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
