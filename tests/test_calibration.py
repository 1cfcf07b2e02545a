"""The statistics against simulation (a small, seeded run of scripts/calibrate_stats.py).

Realistic structure: example difficulty shared across seeds, method-specific per-example effects,
a seed-level random effect. The full grid (2,000 replicates per cell) is the script's job; here
a few hundred replicates per cell must already keep the nominal error rates.
"""

import calibrate
import pytest


@pytest.fixture(scope="module")
def small():
    return calibrate.cell((3, 1000, 0.5, 400, 1))


@pytest.fixture(scope="module")
def large():
    return calibrate.cell((5, 10000, 1.0, 120, 2))


@pytest.mark.parametrize("which", ["small", "large"])
def test_headline_test_keeps_its_level_and_coverage(request, which):
    r = request.getfixturevalue(which)
    assert r["p_rej"] <= 0.08 and r["u_rej"] <= 0.08, r
    assert r["p_cov"] >= 0.90 and r["u_cov"] >= 0.90, r


def test_the_pooled_mcnemar_test_would_not(large):
    """Why the headline is not the pooled McNemar test: with training randomness it over-rejects."""
    assert large["pooled_rej"] > 0.2, large


@pytest.mark.parametrize("which", ["small", "large"])
def test_gate_false_alarms_at_most_five_percent(request, which):
    r = request.getfixturevalue(which)
    assert r["same_fa"] <= 0.05 and r["re_fa"] <= 0.05, r


def test_gate_catches_a_2pp_drop_on_10000_examples(large):
    assert large["same_pow"] >= 0.99, large  # the same networks re-evaluated
    assert large["re_pow"] >= 0.8, large  # retrained, 5 seeds a side, 1 pp seed spread
