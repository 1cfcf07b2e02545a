"""The few statistics the report and the gate rely on, each small enough to check by hand.

- `wilson_interval`: a binomial proportion's interval that behaves near 0 and 1 (robust
  accuracy under PGD is often close to 0, where the Wald interval collapses to a point).
- `mcnemar_exact`: two models scored on the *same* examples differ only where one is right and
  the other wrong; under "equal accuracy" each such discordant example is a fair coin, so the
  count of one kind among the discordant ones is Binomial(d, 1/2) (the exact McNemar test).
- `paired_bootstrap_interval`: a percentile interval for the mean per-example difference,
  resampling examples (never the two models separately), so the pairing is kept.
- `ttest_paired`, `ttest_welch`: for comparisons over training seeds, where the seed (not the
  example) is the unit of replication.
- `holm`: step-down family-wise correction; valid under any dependence between the tests,
  which matters because the many metrics of one model are strongly dependent.

Convention for the one-sided tests: `alternative="less"` asks whether the second argument is
worse than the first (the gate's "did the run fall below the baseline?").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special
from scipy import stats as sps

ALTERNATIVES = ("two-sided", "less", "greater")


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, not {alternative!r}")


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


def paired_bootstrap_interval(diff, n_boot: int = 10000, conf: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(diff), resampling examples with replacement.

    `diff` holds one number per example (for two models: correct_b - correct_a, averaged over
    seed pairs if there are several). Only the counts of each distinct value matter, and the
    counts in a resample of N are Multinomial(N, observed frequencies), so drawing those counts
    is exactly the same bootstrap as drawing N indices, at a cost independent of N. Seeded.
    """
    diff = np.asarray(diff, dtype=float).ravel()
    if diff.size == 0:
        return (float("nan"), float("nan"))
    values, counts = np.unique(diff, return_counts=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(diff.size, counts / diff.size, size=n_boot)
    means = draws @ values / diff.size
    alpha = (1 - conf) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def paired_difference_interval(a, b, n_boot: int = 10000, conf: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of accuracy(b) - accuracy(a) on the same examples; (S, N) arrays average seeds first."""
    a = np.atleast_2d(np.asarray(a, dtype=float))
    b = np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    return paired_bootstrap_interval((b - a).mean(axis=0), n_boot=n_boot, conf=conf, seed=seed)


@dataclass(frozen=True)
class TTest:
    statistic: float
    df: float
    pvalue: float
    mean_difference: float  # mean(y) - mean(x)


def _t_pvalue(diff: float, se: float, df: float, alternative: str) -> tuple[float, float]:
    if not np.isfinite(df) or df <= 0:
        return float("nan"), float("nan")
    if se == 0:
        # No spread at all: the sign of the difference is certain. Documented rather than nan,
        # so that a constant shift over seeds still decides (the gate's tolerance guards size).
        t = 0.0 if diff == 0 else float(np.copysign(np.inf, diff))
    else:
        t = diff / se
    if alternative == "less":
        p = float(sps.t.cdf(t, df))
    elif alternative == "greater":
        p = float(sps.t.sf(t, df))
    else:
        p = float(min(1.0, 2 * sps.t.sf(abs(t), df)))
    if se == 0 and diff == 0:
        p = 1.0
    return t, p


def ttest_paired(x, y, alternative: str = "two-sided") -> TTest:
    """Student's t-test on the differences y - x of matched pairs (here: seed k in both runs)."""
    _check_alternative(alternative)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("paired samples must be 1-d and of equal length")
    d = y - x
    n = d.size
    if n < 2:
        return TTest(float("nan"), float("nan"), float("nan"), float(d.mean()) if n else float("nan"))
    se = float(d.std(ddof=1) / np.sqrt(n))
    t, p = _t_pvalue(float(d.mean()), se, n - 1, alternative)
    return TTest(t, float(n - 1), p, float(d.mean()))


def ttest_welch(x, y, alternative: str = "two-sided") -> TTest:
    """Welch's unequal-variance t-test of mean(y) against mean(x), independent samples."""
    _check_alternative(alternative)
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.size < 2 or y.size < 2:
        return TTest(float("nan"), float("nan"), float("nan"), float(y.mean() - x.mean()) if x.size and y.size else float("nan"))
    vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = float(np.sqrt(vx + vy))
    diff = float(y.mean() - x.mean())
    if se == 0:
        df = float(x.size + y.size - 2)
    else:
        df = float((vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1)))
    t, p = _t_pvalue(diff, se, df, alternative)
    return TTest(t, df, p, diff)


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (reject where adjusted <= alpha); NaNs are left out of the family."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p.ravel()))
    m = ok.size
    if m == 0:
        return out
    flat = p.ravel()[ok]
    order = np.argsort(flat, kind="stable")
    scaled = (m - np.arange(m)) * flat[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    res = out.ravel()
    res[ok[order]] = adjusted
    return res.reshape(p.shape)
