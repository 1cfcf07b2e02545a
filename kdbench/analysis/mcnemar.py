"""Paired tests of two networks on the same examples: McNemar's exact test on the discordant
pairs, the Wilson interval, and McNemar's minimum detectable difference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

from kdbench.analysis.stats import _check_alternative


def wilson_interval(k, n, conf: float = 0.95):
    """Wilson score interval for k successes out of n (scalars or arrays); (nan, nan) for n == 0."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = special.ndtri(0.5 + conf / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
        lo, hi = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    lo = np.where(n > 0, lo, np.nan)
    hi = np.where(n > 0, hi, np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


@dataclass(frozen=True)
class McNemar:
    only_a: int  # examples the first model gets right and the second wrong
    only_b: int  # examples the second model gets right and the first wrong
    pvalue: float
    alternative: str


def binomial_discordant_p(only_a: int, only_b: int, alternative: str = "two-sided") -> float:
    """Exact McNemar p-value from the discordant counts alone.

    Under H0 only_b ~ Binomial(only_a + only_b, 1/2). "less": the second model is worse, so
    small only_b is the evidence; "greater": large only_b. Two-sided doubles the smaller tail
    (exact for the symmetric p = 1/2, and what scipy.stats.binomtest gives there).
    """
    _check_alternative(alternative)
    only_a, only_b = int(only_a), int(only_b)
    if only_a < 0 or only_b < 0:
        raise ValueError("discordant counts must be non-negative")
    d = only_a + only_b
    if d == 0:
        return 1.0
    p_less = float(sps.binom.cdf(only_b, d, 0.5))
    p_greater = float(sps.binom.sf(only_b - 1, d, 0.5))
    if alternative == "less":
        return p_less
    if alternative == "greater":
        return p_greater
    return min(1.0, 2 * min(p_less, p_greater))


def mcnemar_exact(a, b, alternative: str = "two-sided") -> McNemar:
    """Exact McNemar test of two models' per-example correctness on the same examples.

    `a`, `b`: boolean arrays of equal shape; with shape (S, N) (S seed pairs on the same N
    examples) the discordant pairs of all seed pairs are pooled, a stratified McNemar test whose
    conclusion is about these trained models on this test distribution.
    """
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    only_a = int(np.count_nonzero(a & ~b))
    only_b = int(np.count_nonzero(~a & b))
    return McNemar(only_a, only_b, binomial_discordant_p(only_a, only_b, alternative), alternative)


def _mcnemar_critical(b: np.ndarray, level: float) -> np.ndarray:
    """For each count b of examples gained, the fewest lost examples a at which the exact one-sided
    McNemar test rejects: P(Binomial(a + b, 1/2) <= b) <= level (a binary search, vectorised)."""
    lo = np.zeros_like(b)
    hi = b + 64
    while np.any(short := sps.binom.cdf(b, hi + b, 0.5) > level):
        hi = np.where(short, 2 * hi, hi)
    while np.any(hi - lo > 1):
        mid = (lo + hi) // 2
        rejects = sps.binom.cdf(b, mid + b, 0.5) <= level
        hi, lo = np.where(rejects, mid, hi), np.where(rejects, lo, mid)
    return hi


def mcnemar_mdd(discordant: int, n: int, alpha: float = 0.05, power: float = 0.8, one_sided: bool = True) -> float:
    """Smallest accuracy fall the exact McNemar test detects with `power` on n examples of which
    `discordant` already disagree (both ways, half each): the counts lost and gained are taken as
    Poisson around discordant/2 + delta*n and discordant/2, and the power is summed exactly over
    them. With nothing discordant (a deterministic rerun) a fall of about log2(1/alpha) examples
    is already visible."""
    if n <= 0:
        return float("inf")
    level = alpha if one_sided else alpha / 2
    mu = discordant / 2
    b = np.arange(int(mu + 12 * np.sqrt(mu) + 30))
    weight = sps.poisson.pmf(b, mu)
    critical = _mcnemar_critical(b, level)

    def power_at(extra: float) -> float:
        return float((weight * sps.poisson.sf(critical - 1, mu + extra)).sum())

    lo, hi = 0.0, float(critical[0]) + 10.0
    while power_at(hi) < power:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if power_at(mid) >= power else (mid, hi)
    return hi / n
