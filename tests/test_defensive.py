"""Defensive distillation (Papernot et al. 2016) end to end, in miniature: a T=100 teacher and a
student distilled from it at T=100 look robust to PGD on cross-entropy; the worst case over attacks
does not, the masking checks flag them, and the report says so next to the number."""

from pathlib import Path

import pytest

from kdbench.cli import main
from kdbench.reports import render
from kdbench.results.read import read_run

SUITE = Path(__file__).parent / "suites" / "defensive_synthetic.yaml"
EPS = "0.0313725"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dd")
    assert main(["run", str(SUITE), "--out", str(out), "--device", "cpu"]) == 0
    return read_run(out / "defensive_synthetic" / "latest")


def acc(run, model, condition):
    m = run.metrics
    return float(
        m[
            (m.model == model) & (m.condition == condition) & (m.level == (EPS if condition != "clean" else ""))
        ].accuracy.iloc[0]
    )


def test_the_trap_and_the_worst_case(run):
    assert acc(run, "defensive", "clean") > 0.8 and acc(run, "baseline", "clean") > 0.8
    assert acc(run, "defensive", "pgd") > acc(run, "baseline", "pgd") + 0.25  # PGD-CE: "far more robust"
    assert acc(run, "defensive", "worst_case") <= acc(run, "baseline", "worst_case") + 0.05  # it is not


def test_transfer_from_the_twin_beats_cross_entropy_pgd(run):
    m = run.metrics
    assert set(m[m.condition == "transfer"].model) == {"baseline", "defensive"}  # a teacher has no twin
    # black-box examples crafted on the baseline fool the defensive student more than its own CE gradients
    assert acc(run, "defensive", "transfer") < acc(run, "defensive", "pgd") - 0.1


def test_transferability_is_read_from_the_transfer_attack(run):
    import numpy as np

    mm = run.model_metrics
    rows = mm[mm.metric == "transfer_rate"]
    # each twin against the other: the examples crafted on one that fool it, the share that fool the other
    assert sorted(zip(rows.model, rows.reference)) == [("baseline", "defensive"), ("defensive", "baseline")]
    for pos, r in rows.iterrows():
        values = run.model_metric_values[pos]
        covered = ~np.isnan(values)
        assert covered.sum() == r.n > 0 and set(np.unique(values[covered])) <= {0.0, 1.0}
        right = run.correct_for(r.model, r.seed, "transfer", EPS)
        assert np.array_equal(values[covered], 1.0 - right[covered])  # fooled = not counted correct under the attack
        assert r.value == pytest.approx(values[covered].mean())


def test_masking_is_flagged_on_the_distilled_models_only(run):
    d = run.diagnostics
    flagged = set(map(tuple, d[d.flagged][["model", "check"]].to_numpy()))
    assert {("defensive", "loss_dependence"), ("defensive", "vanishing_gradient")} <= flagged
    assert ("teacher_t100", "vanishing_gradient") in flagged
    assert not any(model == "baseline" for model, _ in flagged)


def test_report_puts_the_flag_beside_the_robust_accuracy(run):
    md = render(run.path, "md")
    pair_table = [line for line in md.splitlines() if line.count("|") >= 9]  # the pair's table, not the teacher's
    rows = [
        line for line in pair_table if line.startswith(("| pgd ", "| cw ", "| fgsm ", "| transfer ", "| worst_case "))
    ]
    assert len(rows) == 5 and all("gradient masking suspected (defensive: " in line for line in rows), rows
    assert "## ⚠ Gradient masking suspected" in md
    html = render(run.path, "html")
    assert 'id="masking"' in html and "gradient masking suspected (defensive: " in html
