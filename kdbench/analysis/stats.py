"""Every test and interval kdbench prints, each small enough to check by hand or against scipy.

Two questions, two kinds of test; they are never mixed:
- About the method ("does KD change metric X for this architecture and recipe?"): both training
  randomness and the draw of test examples vary. `method_test_paired` (seed k of one side with seed
  k of the other) and `method_test_unpaired` (the seeds differ) treat the per-example scores as a
  seeds x examples table with crossed random effects (the same hard examples recur in every seed),
  estimate the two variance parts from its mean squares, and combine them with Banerjee's (1960)
  conservative rule for sums of variances with different degrees of freedom. `mdd` says how small a
  difference the design can see; with few seeds it is large, and the report says so.
- About these trained networks ("do these two networks differ on this test set?"):
  `mcnemar_exact` (analysis/mcnemar.py, with `wilson_interval` and `mcnemar_mdd`), per seed
  pair; pooling seed pairs is exact only when both sides are the very same networks (the gate's
  evaluation-only mode), because then each discordant example is a fair coin under the null.
  For distinct trainings the same examples disagree the same way across seeds and a pooled test
  over-rejects (scripts/calibrate_stats.py shows it).
- `wilson_interval` (analysis/mcnemar.py): one model's accuracy, well behaved near 0 and 1
  (robust accuracy often is).
- `holm`: step-down family-wise correction, valid under any dependence between the tests.

Convention for the one-sided tests: `alternative="less"` asks whether the second argument is
worse than the first (the gate's "did the run fall below the baseline?").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

ALTERNATIVES = ("two-sided", "less", "greater")


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, not {alternative!r}")


# ------------------------------------------------------------------ method-level (seeds x examples)
def two_way_mean_squares(y) -> tuple[float, float, float]:
    """Mean squares of an (S, N) seeds-by-examples table, no replication: rows (seeds), columns
    (examples), residual (the seed x example interaction). Rows and residual are nan for S < 2."""
    y = np.asarray(y, dtype=float)
    if y.ndim != 2 or y.shape[1] < 2:
        raise ValueError(f"expected an (S, N) array with N >= 2 examples, got shape {y.shape}")
    s, n = y.shape
    grand = y.mean()
    ss_rows = n * float(((y.mean(axis=1) - grand) ** 2).sum())
    ss_cols = s * float(((y.mean(axis=0) - grand) ** 2).sum())
    ss_resid = max(float(((y - grand) ** 2).sum()) - ss_rows - ss_cols, 0.0)
    if s < 2:
        return float("nan"), ss_cols / (n - 1), float("nan")
    return ss_rows / (s - 1), ss_cols / (n - 1), ss_resid / ((s - 1) * (n - 1))


@dataclass(frozen=True)
class MethodTest:
    """A method-level difference mean(b) - mean(a), with training randomness and test sampling both varying.

    Its variance has two parts: `seed_var` (retraining: the spread of per-seed results, `seed_df`
    degrees of freedom) and `example_var` (drawing the test examples: examples on which one method
    is systematically better, `example_df` degrees of freedom). `mdd`: the smallest true
    |difference| this design detects with the requested power at level alpha.
    """

    design: str  # "paired" (seed k with seed k) or "unpaired" (the seeds differ)
    seeds: tuple[int, int]
    difference: float
    seed_var: float
    seed_df: float
    example_var: float
    example_df: float
    ci: tuple[float, float]
    pvalue: float
    mdd: float
    alternative: str

    @property
    def testable(self) -> bool:
        return self.seed_df >= 1

    @property
    def se(self) -> float:
        return float(np.sqrt(self.seed_var + self.example_var))

    def mdd_at(self, alpha: float, power: float = 0.8) -> float:
        """The MDD at another level, e.g. alpha / m, the Bonferroni level of a Holm family of m
        tests: a difference that large is detected with `power` however the other tests come out."""
        if not self.testable:
            return float("inf")
        return _mdd(self.parts, alpha, power, self.alternative)

    @property
    def parts(self) -> list[tuple[float, float]]:
        return [(self.seed_var, self.seed_df), (self.example_var, self.example_df)]


_SMALLEST_TAIL = 1e-100


def _quantile(tail: float, parts) -> float:
    """Banerjee's conservative critical value: sqrt(sum_j t_{df_j}(1 - tail)^2 var_j)."""
    with np.errstate(over="ignore"):
        q = np.sqrt(sum(np.float64(sps.t.isf(tail, df)) ** 2 * var for var, df in parts if var > 0))
    return float(min(q, 1e300))


def _tail(x: float, parts) -> float:
    """Upper-tail probability at x of the symmetric law whose quantiles `_quantile` gives."""
    if x <= 0:
        return 0.5
    if _quantile(_SMALLEST_TAIL, parts) <= x:
        return 0.0  # beyond what is worth resolving; printed as "< 1e-100"
    u = optimize.brentq(lambda u: _quantile(10.0**u, parts) - x, np.log10(_SMALLEST_TAIL), np.log10(0.5), xtol=1e-10)
    return float(10.0**u)


def _mdd(parts, alpha: float, power: float, alternative: str) -> float:
    level = alpha / 2 if alternative == "two-sided" else alpha
    return _quantile(level, parts) + _quantile(1 - power, parts)


def _resolution(n: int) -> float:
    """Sheppard's correction for a per-seed accuracy known only to 1/n: a variance of at least
    (1/n)^2 / 12, so that seeds whose differences tie by chance (+7 examples twice) do not claim
    certainty. Too small to matter otherwise."""
    return 1.0 / (12.0 * n * n)


def _method_test(
    design, seeds, diff, seed_var, seed_df, example_var, example_df, alternative, conf, alpha, power
) -> MethodTest:
    _check_alternative(alternative)
    if not seed_df >= 1 or not np.isfinite(diff):
        nan = float("nan")
        return MethodTest(
            design,
            seeds,
            float(diff),
            nan,
            float(seed_df),
            float(example_var),
            float(example_df),
            (nan, nan),
            nan,
            float("inf"),
            alternative,
        )
    parts = [(seed_var, seed_df), (example_var, example_df)]  # seed_var > 0: never below _resolution
    half = _quantile((1 - conf) / 2, parts)
    if alternative == "two-sided":
        p = min(1.0, 2 * _tail(abs(diff), parts))
    else:
        upper = _tail(abs(diff), parts)  # P(T >= |diff|)
        worse = diff < 0 if alternative == "less" else diff > 0
        p = upper if worse else 1.0 - upper
    mdd = _mdd(parts, alpha, power, alternative)
    return MethodTest(
        design,
        seeds,
        float(diff),
        float(seed_var),
        float(seed_df),
        float(example_var),
        float(example_df),
        (float(diff - half), float(diff + half)),
        float(p),
        float(mdd),
        alternative,
    )


def method_test_paired(
    a, b, alternative: str = "two-sided", conf: float = 0.95, alpha: float = 0.05, power: float = 0.8
) -> MethodTest:
    """Method-level test of b against a from S seed pairs (row k of each: the twins of seed k) on the same N examples.

    `a`, `b`: (S, N) per-example scores (correctness, or a share such as corruptions right). With
    D = b - a, the mean squares of D's seeds-by-examples table give Var(mean D) =
    (MS_seeds + MS_examples - MS_resid) / (S N) (crossed random effects); the seed part
    MS_seeds / (S N) (S - 1 df) and the example part max(0, MS_examples - MS_resid) / (S N)
    (N - 1 df) are combined by Banerjee's (1960) rule, which keeps the level for any ratio of the two.
    """
    a = np.atleast_2d(np.asarray(a, dtype=float))
    b = np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape != b.shape:
        raise ValueError(f"paired arrays differ in shape: {a.shape} vs {b.shape}")
    s, n = a.shape
    d = b - a
    ms_rows, ms_cols, ms_resid = two_way_mean_squares(d)
    seed_var = max(ms_rows / (s * n), _resolution(n) / s)
    example_var = max(0.0, ms_cols - ms_resid) / (s * n) if s > 1 else float("nan")
    return _method_test(
        "paired", (s, s), float(d.mean()), seed_var, s - 1, example_var, n - 1, alternative, conf, alpha, power
    )


def method_test_unpaired(
    a, b, alternative: str = "two-sided", conf: float = 0.95, alpha: float = 0.05, power: float = 0.8
) -> MethodTest:
    """Method-level test of b (S_b seeds) against a (S_a seeds), independent trainings on the same N examples.

    The seed spread is pooled over both sides (S_a + S_b - 2 df, Student's equal-variance
    assumption: one recipe retrained, or twins of one architecture), so one side may have a single
    seed. The example part is the variance of the per-example contrast mean_b - mean_a less its
    residual share, as in the paired test.
    """
    a = np.atleast_2d(np.asarray(a, dtype=float))
    b = np.atleast_2d(np.asarray(b, dtype=float))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the two sides were scored on different numbers of examples: {a.shape[1]} vs {b.shape[1]}")
    (sa, n), sb = a.shape, b.shape[0]
    df = sa + sb - 2
    diff = float(b.mean() - a.mean())
    if df < 1:
        return _method_test(
            "unpaired", (sa, sb), diff, float("nan"), df, float("nan"), n - 1, alternative, conf, alpha, power
        )
    ms = [(two_way_mean_squares(y), y.shape[0]) for y in (a, b) if y.shape[0] > 1]
    ms_rows = sum((k - 1) * m[0] for m, k in ms) / df
    ms_resid = sum((k - 1) * m[2] for m, k in ms) / df
    contrast = b.mean(axis=0) - a.mean(axis=0)
    seed_var = max(ms_rows / n, _resolution(n)) * (1 / sa + 1 / sb)
    example_var = max(0.0, float(contrast.var(ddof=1)) - ms_resid * (1 / sa + 1 / sb)) / n
    return _method_test("unpaired", (sa, sb), diff, seed_var, df, example_var, n - 1, alternative, conf, alpha, power)


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
