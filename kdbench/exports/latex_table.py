"""The headline table as booktabs LaTeX, ready to \\input inside a table environment.

One row per pair and metric (pandas' Styler writes it, the pair as the first index level):
baseline and distilled accuracy (mean +- sd over seeds, %), the difference in percentage points
with its significance marks (* p_Holm < 0.05, ** < 0.01), its 95% interval and p_Holm. A dagger
marks an attack row where a gradient-masking check flags either model. Needs \\usepackage{booktabs}.
"""

from __future__ import annotations

import math
from pathlib import Path

from kdbench.exports import register_exporter
from kdbench.exports.headline import headline_table
from kdbench.util.atomic import write_text
from kdbench.util.lazy import lazy

pd = lazy("pandas")

SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
SYMBOLS = {"ε": r"$\varepsilon$", "σ": r"$\sigma$", "±": r"$\pm$", "−": "-", "≥": r"$\geq$", "≤": r"$\leq$"}
COLUMNS = [r"Baseline (\%)", r"Distilled (\%)", r"$\Delta$ (pp)", "95\\% CI (pp)", r"$p_{\mathrm{Holm}}$"]


def escape(text) -> str:
    """Plain text to LaTeX: specials escaped, the report's Greek letters and signs as math; any
    other non-ASCII character is dropped rather than left to break a pdflatex build."""
    out = []
    for ch in str(text):
        if ch in SPECIAL:
            out.append(SPECIAL[ch])
        elif ch in SYMBOLS:
            out.append(SYMBOLS[ch])
        elif ord(ch) < 128:
            out.append(ch)
    return "".join(out)


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _acc(mean, sd) -> str:
    return "--" if not _finite(mean) else f"{100 * mean:.1f}" + (rf" $\pm$ {100 * sd:.1f}" if _finite(sd) else "")


def _diff(d, p_holm) -> str:
    if not _finite(d):
        return "--"
    mark = "^{**}" if _finite(p_holm) and p_holm < 0.01 else "^{*}" if _finite(p_holm) and p_holm < 0.05 else ""
    return f"${100 * d:+.1f}{mark}$"


def _ci(lo, hi) -> str:
    return f"$[{100 * lo:+.1f}, {100 * hi:+.1f}]$" if _finite(lo) and _finite(hi) else "--"


def _p(p) -> str:
    return "--" if not _finite(p) else "$<$0.001" if p < 0.001 else f"{p:.3f}"


def latex_table(data) -> str:
    t = headline_table(data)
    if t.empty:
        return "% kdbench export: no compare pairs in this run, so no headline table\n"
    rows = [
        [
            _acc(r.baseline_acc, r.baseline_sd),
            _acc(r.distilled_acc, r.distilled_sd),
            _diff(r.diff, r.p_holm),
            _ci(r.ci_lo, r.ci_hi),
            _p(r.p_holm),
        ]
        for r in t.itertuples(index=False)
    ]
    index = pd.MultiIndex.from_arrays(
        [
            [f"{escape(r.distilled)} vs {escape(r.baseline)}" for r in t.itertuples(index=False)],
            [escape(r.metric) + (r"$^{\dagger}$" if r.masking else "") for r in t.itertuples(index=False)],
        ]
    )
    frame = pd.DataFrame(rows, index=index, columns=COLUMNS)
    body = frame.style.to_latex(
        hrules=True, clines="skip-last;data", multirow_align="naive", column_format="ll" + "r" * len(COLUMNS)
    )
    seeds = sorted({int(s) for s in t["baseline_seeds"]} | {int(s) for s in t["distilled_seeds"]})
    head = [
        f"% {' '.join(str(data.title).split())}: kdbench export --format latex (needs \\usepackage{{booktabs}})",
        f"% Accuracy in %, mean $\\pm$ sd over seeds ({', '.join(map(str, seeds))} per model); Delta = distilled - "
        "baseline in",
        "% percentage points, 95% CI and p from the method-level test (seeds and test examples both vary), "
        "Holm-adjusted",
        f"% over the {data.holm_family} headline tests: * p_Holm < 0.05, ** p_Holm < 0.01. A dagger: a "
        "gradient-masking",
        "% check flags a model of the pair at that epsilon, so its robust accuracy is not to be read as robustness.",
    ]
    return "\n".join(head) + "\n" + body


@register_exporter("latex")
def write_latex(data, out: Path) -> list[Path]:
    """The headline table as booktabs LaTeX (pandas' Styler), significance marks and masking
    daggers included, ready to \\input."""
    write_text(out, latex_table(data))
    return [out]
