"""The answer at a glance: one sentence per compare pair, in plain words, from the headline tests.

Per pair the questions are, in order: clean accuracy, corruption accuracy (the mean over the
corruption cells), Gaussian noise (per sigma) and worst-case attack accuracy (per epsilon; a
single attack's rows when no worst case was derived). Each answer is the row's verdict with its
number: a significant difference with its 95% interval, "no detectable difference" with its
interval, or "too few seeds to tell" with the smallest difference the seeds could detect.
Distilled students come first, controls (students trained without a teacher, such as label
smoothing) after. A robust-accuracy gain is never stated plainly while a gradient-masking check
flags either model at that epsilon: the sentence says it is not to be trusted.

Plain strings only: the renderers escape them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kdbench.reports.keys import MEAN_CORRUPTION
from kdbench.reports.pairs import Pair
from kdbench.reports.tables import ReportData, masking_warning
from kdbench.util.format import interval_pp, level_text, mdd_pp, signed_pp
from kdbench.util.names import is_worst_case, norm_of

SIGNIFICANT = ("higher", "lower")
KINDS = (("distilled", "Distilled students"), ("control", "Controls (trained without a teacher)"))


@dataclass
class Finding:
    question: str  # "clean accuracy", "noise σ=0.04", "worst-case attack ε=8/255"
    verdict: str  # as the headline table says it
    diff: float
    lo: float
    hi: float
    mdd: float
    masking: str = ""  # the flagged checks behind an attack row

    @property
    def significant(self) -> bool:
        return self.verdict.endswith(SIGNIFICANT)

    @property
    def undecided(self) -> bool:
        return not self.significant and self.verdict != "no detectable difference"

    def text(self) -> str:
        diff, ci = f"{signed_pp(self.diff)} pp", interval_pp(self.lo, self.hi)
        if self.significant and self.masking and self.diff > 0:
            return f"{self.question} {diff} {ci}, not to be trusted: {self.masking}"
        if self.significant:
            return f"{self.question} {diff} {ci} ({self.verdict})"
        if self.verdict == "no detectable difference":
            return f"{self.question}: no detectable difference ({diff} {ci})"
        return f"{self.question} ({diff})"


def _undecided(found: list[Finding], seeds: int) -> str:
    """'too few seeds to tell on A (+x pp), B (+y pp) (why)', one clause for all of them."""
    mdds = [f.mdd for f in found if math.isfinite(f.mdd)]
    if not mdds and seeds < 2:
        why = "one seed per model: no method-level test"
    elif min(mdds) > 1:
        why = f"{seeds} seeds cannot detect any difference in accuracy"
    else:
        why = f"{seeds} seeds detect only differences of {mdd_pp(min(mdds))} pp or more"
    return "too few seeds to tell on " + ", ".join(f.text() for f in found) + f" ({why})"


@dataclass
class PairVerdict:
    distilled: str
    baseline: str
    kind: str  # "distilled" or "control"
    arch: str
    seeds: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"{self.distilled} vs {self.baseline} ({self.arch}, {self.seeds} seed{'s' if self.seeds != 1 else ''})"

    def clauses(self) -> list[tuple[str, bool]]:
        """(text, significant) per clause: each decided question, then the undecided ones together."""
        out = [(f.text(), f.significant) for f in self.findings if not f.undecided]
        undecided = [f for f in self.findings if f.undecided]
        if undecided:
            out.append((_undecided(undecided, self.seeds), False))
        return out

    def sentence(self) -> str:
        clauses = self.clauses()
        return (
            f"{self.title}: " + "; ".join(text for text, _ in clauses) + "."
            if clauses
            else f"{self.title}: nothing compared."
        )


def _finding(question: str, row, masking: str = "") -> Finding:
    def value(key: str) -> float:
        return math.nan if row.get(key) is None else float(row.get(key))

    return Finding(
        question, str(row.get("verdict") or ""), value("diff"), value("ci_lo"), value("ci_hi"), value("mdd"), masking
    )


def findings(data: ReportData, pair: Pair) -> list[Finding]:
    t = pair.table
    tested = t[t["verdict"].fillna("") != ""] if "verdict" in t else t.iloc[0:0]
    out = [_finding("clean accuracy", r) for _, r in tested[tested["group"] == "clean"].iterrows()]
    out += [_finding("corruption accuracy", r) for _, r in tested[tested["group"] == MEAN_CORRUPTION].iterrows()]
    for _, r in tested[tested["group"] == "noise"].iterrows():
        out.append(_finding(f"{r['condition'].replace('_', ' ')} σ={level_text('noise', r['level'])}", r))
    attacks = tested[tested["group"] == "attack"]
    worst = attacks[attacks["condition"].map(is_worst_case)]
    for _, r in (worst if len(worst) else attacks).iterrows():
        norm = norm_of(r["condition"])
        name = (
            ("worst-case attack" if norm == "Linf" else "worst-case L2 attack")
            if is_worst_case(r["condition"])
            else r["condition"]
        )
        flag = masking_warning(data.masking, (pair.distilled, pair.baseline), r["level"], r["condition"])
        out.append(_finding(f"{name} ε={level_text('attack', r['level'], norm)}", r, flag))
    return out


def pair_verdicts(data: ReportData) -> list[PairVerdict]:
    """One per compare pair, in the report's order."""
    arch = data.run.metrics.drop_duplicates("model").set_index("model")["arch"]
    out = []
    for pair in data.pairs:
        seeds = max(len(pair.seeds[0]), len(pair.seeds[1]))
        out.append(
            PairVerdict(
                pair.distilled, pair.baseline, pair.role, str(arch.get(pair.distilled, "")), seeds, findings(data, pair)
            )
        )
    return out  # in the report's order: distilled pairs first, controls after


def run_verdicts(run) -> list[PairVerdict]:
    """The verdicts of a loaded run (results.contract.Run): what the command line prints at the end,
    the runs index stores and `kdbench.verdicts` returns, built once here."""
    from kdbench.reports.tables import build

    return pair_verdicts(build(run))
