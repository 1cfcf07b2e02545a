"""kdbench.analysis.stats against scipy (and against hand-made contingency tables)."""

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from kdbench.analysis import mcnemar, stats


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (5, 10), (10, 10), (0, 1), (731, 1000), (9999, 10000), (3, 7)])
@pytest.mark.parametrize("conf", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(k, n, conf):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    lo, hi = mcnemar.wilson_interval(k, n, conf)
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)


def test_wilson_vectorised_and_empty():
    lo, hi = mcnemar.wilson_interval(np.array([0, 5]), np.array([10, 10]))
    assert lo.shape == (2,) and lo[0] == 0.0 and 0 < hi[0] < 0.35
    assert all(np.isnan(mcnemar.wilson_interval(0, 0)))


def _table(a11, a10, a01, a00):
    """Per-example correctness of two models from the cells of a 2x2 table (a10: A right, B wrong)."""
    a = np.array([1] * a11 + [1] * a10 + [0] * a01 + [0] * a00, bool)
    b = np.array([1] * a11 + [0] * a10 + [1] * a01 + [0] * a00, bool)
    return a, b


@pytest.mark.parametrize(
    "cells", [(50, 10, 3, 37), (40, 0, 0, 60), (10, 7, 7, 5), (0, 1, 0, 0), (30, 2, 25, 1), (900, 61, 40, 12)]
)
@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_mcnemar_exact_equals_binomial_test_on_discordant_pairs(cells, alternative):
    a, b = _table(*cells)
    res = mcnemar.mcnemar_exact(a, b, alternative)
    assert (res.only_a, res.only_b) == (cells[1], cells[2])
    d = cells[1] + cells[2]
    ref = 1.0 if d == 0 else sps.binomtest(cells[2], d, 0.5, alternative=alternative).pvalue
    assert res.pvalue == pytest.approx(ref, rel=1e-10, abs=1e-300)


def test_mcnemar_direction():
    # B loses 20 examples A got right and gains 2: "B is worse" must be significant, "B better" not.
    a, b = _table(500, 20, 2, 100)
    assert mcnemar.mcnemar_exact(a, b, "less").pvalue < 1e-3
    assert mcnemar.mcnemar_exact(a, b, "greater").pvalue > 0.99
    assert mcnemar.mcnemar_exact(a, a, "less").pvalue == 1.0


def test_mcnemar_pools_seed_pairs_of_the_same_networks():
    a1, b1 = _table(10, 4, 1, 5)
    a2, b2 = _table(12, 3, 0, 5)
    res = mcnemar.mcnemar_exact(np.stack([a1, a2]), np.stack([b1, b2]), "less")
    assert (res.only_a, res.only_b) == (7, 1)
    assert res.pvalue == pytest.approx(sps.binomtest(1, 8, 0.5, alternative="less").pvalue)
    with pytest.raises(ValueError):
        mcnemar.mcnemar_exact(a1, b1[:-1])
    with pytest.raises(ValueError):
        mcnemar.binomial_discordant_p(1, 2, "smaller")


def test_two_way_mean_squares_by_definition():
    y = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    s, n = y.shape
    g, r, c = y.mean(), y.mean(axis=1), y.mean(axis=0)
    resid = sum((y[i, j] - r[i] - c[j] + g) ** 2 for i in range(s) for j in range(n))
    want = (n * ((r - g) ** 2).sum() / (s - 1), s * ((c - g) ** 2).sum() / (n - 1), resid / ((s - 1) * (n - 1)))
    assert stats.two_way_mean_squares(y) == pytest.approx(want)
    rows, cols, res = stats.two_way_mean_squares(y[:1])
    assert np.isnan(rows) and np.isnan(res) and cols == pytest.approx(y[0].var(ddof=1))


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_method_test_is_students_t_when_examples_add_no_variance(alternative):
    """Per-seed differences constant over examples: the paired test is the one-sample t-test on the
    per-seed differences, and the unpaired test Student's pooled two-sample t-test."""
    d = np.array([0.012, -0.004, 0.02, 0.007])
    a = np.zeros((4, 50))
    b = np.repeat(d[:, None], 50, axis=1)
    ours = stats.method_test_paired(a, b, alternative)
    ref = sps.ttest_1samp(d, 0.0, alternative=alternative)
    assert ours.example_var == pytest.approx(0, abs=1e-30) and ours.seed_df == 3
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-6)
    ci = sps.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert ours.ci == pytest.approx((ci.low, ci.high), rel=1e-6)
    x = np.array([0.70, 0.71, 0.69])
    y = np.array([0.72, 0.735, 0.71, 0.725])
    ours = stats.method_test_unpaired(np.repeat(x[:, None], 40, 1), np.repeat(y[:, None], 40, 1), alternative)
    ref = sps.ttest_ind(y, x, equal_var=True, alternative=alternative)
    assert ours.seed_df == 5 and ours.pvalue == pytest.approx(ref.pvalue, rel=1e-6)


def test_method_test_is_the_examples_t_test_when_seeds_add_no_variance():
    rng = np.random.default_rng(2)
    per_example = rng.choice([-1.0, 0.0, 1.0], size=300, p=[0.08, 0.8, 0.12])
    b = np.repeat(per_example[None, :], 3, axis=0)
    ours = stats.method_test_paired(np.zeros_like(b), b)
    assert ours.seed_var == pytest.approx(1 / (12 * 300**2 * 3))  # only the resolution floor
    assert ours.pvalue == pytest.approx(sps.ttest_1samp(per_example, 0.0).pvalue, rel=1e-2)


def test_banerjee_combination_by_hand():
    parts = [(4e-5, 2), (1e-5, 999)]
    want = np.sqrt(sps.t.ppf(0.975, 2) ** 2 * 4e-5 + sps.t.ppf(0.975, 999) ** 2 * 1e-5)
    assert stats._quantile(0.025, parts) == pytest.approx(want)
    assert stats._tail(want, parts) == pytest.approx(0.025, rel=1e-6)
    assert stats._tail(0.0, parts) == 0.5 and stats._tail(1e60, parts) == 0.0


def test_mdd_gives_the_stated_power():
    """One variance part: the test is a t-test, whose power at the MDD the noncentral t gives."""
    for df in (4, 9, 30):
        d = np.linspace(-1, 1, df + 1)
        t = stats.method_test_paired(np.zeros((df + 1, 20)), np.repeat(d[:, None], 20, 1) * 0.01)
        se = np.sqrt(t.seed_var)
        crit = sps.t.ppf(0.975, df)
        power = sps.nct.sf(crit, df, t.mdd / se) + sps.nct.cdf(-crit, df, t.mdd / se)
        assert 0.78 <= power <= 0.86, (df, power)


def test_mcnemar_mdd_by_exact_power():
    """The MDD's power, by simulating its own model (Poisson counts) and the exact test."""
    rng = np.random.default_rng(4)
    for discordant, n, level in ((0, 10000, 0.05), (0, 1000, 0.05 / 21), (60, 1000, 0.05), (600, 10000, 0.01)):
        m = mcnemar.mcnemar_mdd(discordant, n, level)
        lost = rng.poisson(discordant / 2 + m * n, 4000)
        gained = rng.poisson(discordant / 2, 4000)
        rejected = np.mean([mcnemar.binomial_discordant_p(a, b, "less") <= level for a, b in zip(lost, gained)])
        assert 0.77 <= rejected <= 0.84, (discordant, n, level, rejected)
    # nothing discordant: p = 2^-k for k examples lost, so about log2(1/level) of them are enough
    assert 7 <= mcnemar.mcnemar_mdd(0, 1000, 0.05 / 21) * 1000 <= 13
    # many discordant: close to the normal approximation delta*sqrt(n) = k*sqrt(r + delta)
    k = sps.norm.ppf(0.99) + sps.norm.ppf(0.8)
    m = mcnemar.mcnemar_mdd(600, 10000, 0.01)
    assert m * np.sqrt(10000) == pytest.approx(k * np.sqrt(0.06 + m), rel=0.1)
    assert mcnemar.mcnemar_mdd(600, 10000, one_sided=False) > mcnemar.mcnemar_mdd(600, 10000)


def test_two_seeds_that_agree_exactly_claim_no_certainty():
    """Per-seed differences equal by chance (+7 examples in both seeds, seen in the smoke suite):
    the seed part never falls below the resolution of an accuracy on N examples (Sheppard), so the
    interval keeps a width and p stays above 0."""
    rng = np.random.default_rng(3)
    a = rng.random((2, 2000)) < 0.5
    b = a.copy()
    for k in range(2):  # 30 gained and 23 lost in each seed, on different examples
        b[k, rng.choice(np.flatnonzero(~a[k]), 30, replace=False)] = True
        b[k, rng.choice(np.flatnonzero(a[k]), 23, replace=False)] = False
    t = stats.method_test_paired(a, b)
    assert t.difference == pytest.approx(7 / 2000)
    assert t.seed_var == pytest.approx(1 / (12 * 2000**2 * 2))
    half = sps.t.ppf(0.975, 1) * np.sqrt(t.seed_var + t.example_var)
    assert t.ci == pytest.approx((t.difference - half, t.difference + half)) and t.ci[1] - t.ci[0] > 0.002
    assert t.pvalue > 0.01  # as a tie within one example's resolution would give, not 0


def test_method_test_needs_two_seeds():
    a = np.ones((1, 30))
    t = stats.method_test_paired(a, a * 0)
    assert not t.testable and np.isnan(t.pvalue) and np.isinf(t.mdd)
    assert np.isnan(stats.method_test_unpaired(a, a).pvalue)
    assert stats.method_test_unpaired(np.ones((2, 30)), a).testable  # one side's single seed borrows the other's spread
    same = np.tile([1.0, 0.0, 1.0], (3, 1000))
    t = stats.method_test_paired(same, same)
    assert t.pvalue == 1.0 and t.mdd < 0.01 and -0.001 < t.ci[0] < 0 < t.ci[1] < 0.001
    with pytest.raises(ValueError):
        stats.method_test_paired(np.ones((2, 30)), np.ones((3, 30)))
    with pytest.raises(ValueError):
        stats.method_test_unpaired(np.ones((2, 30)), np.ones((2, 31)))


def _holm_by_definition(p):
    """Closed-testing form: adj_i = max over j with p_j <= p_i (in sorted order) of min(1, (m - rank_j) p_j)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adj = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def test_holm_hand_example():
    # Textbook example: p = (0.01, 0.04, 0.03, 0.005) -> (0.03, 0.06, 0.06, 0.02).
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_matches_definition_and_bonferroni_bounds():
    rng = np.random.default_rng(7)
    for m in (1, 2, 5, 13):
        p = rng.random(m) ** 3
        adj = stats.holm(p)
        assert adj == pytest.approx(_holm_by_definition(list(p)))
        assert np.all(adj >= p - 1e-15)
        assert np.all(adj <= np.minimum(1, m * p) + 1e-15)
        assert adj[np.argmin(p)] == pytest.approx(min(1, m * p.min()))


def test_holm_leaves_nan_out_of_the_family():
    adj = stats.holm([0.01, np.nan, 0.02])
    assert np.isnan(adj[1])
    assert adj[[0, 2]] == pytest.approx([0.02, 0.02])
    assert np.isnan(stats.holm([np.nan])).all()


def test_holm_controls_familywise_error_under_the_null():
    """Under the global null, P(any rejection at 0.05) <= 0.05: a check that the correction can fail."""
    rng = np.random.default_rng(11)
    p = rng.random((4000, 10))
    rejections = np.array([np.any(stats.holm(row) <= 0.05) for row in p])
    assert rejections.mean() < 0.06
    raw = np.any(p <= 0.05, axis=1).mean()
    assert raw > 0.3  # uncorrected would reject far too often


@pytest.mark.parametrize("only_a,only_b", list(itertools.product([0, 1, 3, 12], [0, 2, 9])))
def test_binomial_discordant_tails_sum_above_one(only_a, only_b):
    less = mcnemar.binomial_discordant_p(only_a, only_b, "less")
    greater = mcnemar.binomial_discordant_p(only_a, only_b, "greater")
    assert less + greater >= 1.0 - 1e-12  # the observed value is in both tails
    assert mcnemar.binomial_discordant_p(only_a, only_b) <= 1.0
