"""How numbers and condition levels are shown to people; one place so the HTML, Markdown and gate agree.

Epsilons are stored in [0, 1] pixel units but people think in k/255, so Linf attack levels are
shown that way (L2 radii as stored: 0.5); sigmas stay as stored; corruption levels are severities.
"""

from __future__ import annotations

import math

from kdbench.util.names import corruption_name, norm_of

DASH = "—"


def level_text(group: str, level: str, norm: str = "Linf") -> str:
    if level in ("", None):
        return ""
    if group == "attack" and norm == "L2":  # an L2 radius is not a pixel level: shown as stored
        return str(level)
    if group == "attack":
        try:
            k = float(level) * 255
        except ValueError:
            return str(level)
        return f"{round(k)}/255" if abs(k - round(k)) < 1e-3 else f"{k:.3g}/255"
    return str(level)


def level_symbol(group: str) -> str:
    return {"noise": "σ", "attack": "ε", "corruption": "severity "}.get(group, "")


def metric_label(group: str, condition: str, level: str) -> str:
    """'clean', 'gaussian_noise σ=0.05', 'pgd ε=8/255', 'fog severity 3'."""
    if group == "corruption":
        condition = corruption_name(condition)
    if level in ("", None):
        return condition
    sym = level_symbol(group)
    text = level_text(group, level, norm_of(condition))
    return (
        f"{condition} {sym}{text}"
        if sym.endswith(" ")
        else f"{condition} {sym}={text}"
        if sym
        else f"{condition} {text}"
    )


def pct(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    return f"{100 * x:.{digits}f}"


def signed_pp(x, digits: int = 1) -> str:
    """A difference of accuracies in percentage points, always signed (a true minus sign)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return DASH
    v = 100 * x
    if round(v, digits) == 0:
        v = 0.0
    return f"{v:+.{digits}f}".replace("-", "−")


def interval_pct(lo, hi, digits: int = 1) -> str:
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return DASH
    return f"[{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


def interval_pp(lo, hi, digits: int = 1) -> str:
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return DASH
    return f"[{signed_pp(lo, digits)}, {signed_pp(hi, digits)}]"


def pvalue(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return DASH
    if p >= 0.001:
        return f"{p:.3f}"
    if p == 0:
        return "0"
    return f"{p:.1e}"


def mdd_pp(value) -> str:
    """A minimum detectable difference in percentage points; beyond 100 pp it only says "over 100"
    (no accuracy difference that large exists: the design cannot tell anything)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if value > 1:
        return "over 100"
    return f"{100 * value:.2f}"
