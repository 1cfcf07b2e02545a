"""bench.stats against scipy (and against hand-made contingency tables)."""

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from bench import stats


@pytest.mark.parametrize("k,n", [(0, 10), (1, 10), (5, 10), (10, 10), (0, 1), (731, 1000), (9999, 10000), (3, 7)])
@pytest.mark.parametrize("conf", [0.9, 0.95, 0.99])
def test_wilson_matches_scipy(k, n, conf):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    lo, hi = stats.wilson_interval(k, n, conf)
    assert lo == pytest.approx(ref.low, abs=1e-12)
    assert hi == pytest.approx(ref.high, abs=1e-12)


def test_wilson_vectorised_and_empty():
    lo, hi = stats.wilson_interval(np.array([0, 5]), np.array([10, 10]))
    assert lo.shape == (2,) and lo[0] == 0.0 and 0 < hi[0] < 0.35
    assert all(np.isnan(stats.wilson_interval(0, 0)))


def _table(a11, a10, a01, a00):
    """Per-example correctness of two models from the cells of a 2x2 table (a10: A right, B wrong)."""
    a = np.array([1] * a11 + [1] * a10 + [0] * a01 + [0] * a00, bool)
    b = np.array([1] * a11 + [0] * a10 + [1] * a01 + [0] * a00, bool)
    return a, b


@pytest.mark.parametrize("cells", [(50, 10, 3, 37), (40, 0, 0, 60), (10, 7, 7, 5), (0, 1, 0, 0), (30, 2, 25, 1), (900, 61, 40, 12)])
@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_mcnemar_exact_equals_binomial_test_on_discordant_pairs(cells, alternative):
    a, b = _table(*cells)
    res = stats.mcnemar_exact(a, b, alternative)
    assert (res.only_a, res.only_b) == (cells[1], cells[2])
    d = cells[1] + cells[2]
    ref = 1.0 if d == 0 else sps.binomtest(cells[2], d, 0.5, alternative=alternative).pvalue
    assert res.pvalue == pytest.approx(ref, rel=1e-10, abs=1e-300)


def test_mcnemar_direction():
    # B loses 20 examples A got right and gains 2: "B is worse" must be significant, "B better" not.
    a, b = _table(500, 20, 2, 100)
    assert stats.mcnemar_exact(a, b, "less").pvalue < 1e-3
    assert stats.mcnemar_exact(a, b, "greater").pvalue > 0.99
    assert stats.mcnemar_exact(a, a, "less").pvalue == 1.0


def test_mcnemar_pools_seed_pairs():
    a1, b1 = _table(10, 4, 1, 5)
    a2, b2 = _table(12, 3, 0, 5)
    res = stats.mcnemar_exact(np.stack([a1, a2]), np.stack([b1, b2]), "less")
    assert (res.only_a, res.only_b) == (7, 1)
    assert res.pvalue == pytest.approx(sps.binomtest(1, 8, 0.5, alternative="less").pvalue)
    with pytest.raises(ValueError):
        stats.mcnemar_exact(a1, b1[:-1])
    with pytest.raises(ValueError):
        stats.binomial_discordant_p(1, 2, "smaller")


def test_paired_bootstrap_agrees_with_scipy_bootstrap():
    rng = np.random.default_rng(3)
    a = rng.random(400) < 0.7
    b = a.copy()
    flip = rng.random(400) < 0.15
    b[flip] = ~b[flip]
    ours = stats.paired_difference_interval(a, b, n_boot=20000, seed=1)
    ref = sps.bootstrap(
        (a.astype(float), b.astype(float)),
        lambda x, y, axis=-1: y.mean(axis=axis) - x.mean(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=20000,
        method="percentile",
        random_state=2,
    ).confidence_interval
    # Two Monte Carlo estimates of the same percentiles: agree to well within one example's weight.
    assert ours[0] == pytest.approx(ref.low, abs=0.006)
    assert ours[1] == pytest.approx(ref.high, abs=0.006)
    diff = b.mean() - a.mean()
    assert ours[0] < diff < ours[1]


def test_paired_bootstrap_is_seeded_and_degenerate_cases():
    d = np.r_[np.ones(30), np.zeros(60), -np.ones(10)]
    assert stats.paired_bootstrap_interval(d, seed=5) == stats.paired_bootstrap_interval(d, seed=5)
    assert stats.paired_bootstrap_interval(np.zeros(50)) == (0.0, 0.0)
    assert all(np.isnan(stats.paired_bootstrap_interval([])))


def test_paired_bootstrap_multinomial_equals_index_resampling():
    """The multinomial shortcut is the same distribution as resampling indices: compare the spread."""
    rng = np.random.default_rng(0)
    d = rng.choice([-1.0, 0.0, 0.5, 1.0], size=300, p=[0.1, 0.6, 0.1, 0.2])
    idx = rng.integers(0, d.size, size=(20000, d.size))
    direct = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    ours = stats.paired_bootstrap_interval(d, n_boot=20000, seed=4)
    assert ours == pytest.approx(tuple(direct), abs=0.005)


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_t_tests_match_scipy(alternative):
    x = np.array([0.712, 0.705, 0.721, 0.698])
    y = np.array([0.701, 0.699, 0.715, 0.690])
    ours = stats.ttest_paired(x, y, alternative)
    ref = sps.ttest_rel(y, x, alternative=alternative)
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.pvalue == pytest.approx(ref.pvalue)
    assert ours.df == 3
    z = np.array([0.69, 0.70, 0.66])
    ours = stats.ttest_welch(x, z, alternative)
    ref = sps.ttest_ind(z, x, equal_var=False, alternative=alternative)
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.pvalue == pytest.approx(ref.pvalue)


def test_t_tests_degenerate_spread():
    x = np.array([0.7, 0.71, 0.72])
    assert stats.ttest_paired(x, x, "less").pvalue == 1.0
    assert stats.ttest_paired(x, x - 0.03, "less").pvalue == 0.0  # a constant shift is certain
    assert stats.ttest_paired(x, x + 0.03, "less").pvalue == 1.0
    assert np.isnan(stats.ttest_paired(x[:1], x[:1]).pvalue)
    assert np.isnan(stats.ttest_welch(x[:1], x).pvalue)


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
    less = stats.binomial_discordant_p(only_a, only_b, "less")
    greater = stats.binomial_discordant_p(only_a, only_b, "greater")
    assert less + greater >= 1.0 - 1e-12  # the observed value is in both tails
    assert stats.binomial_discordant_p(only_a, only_b) <= 1.0
