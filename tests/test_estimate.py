"""The dry run's time estimate: passes counted per job, priced by one timed batch per architecture."""

import math
from pathlib import Path

import pytest

from kdbench.cli import main
from kdbench.config import load_suite
from kdbench.pipeline import estimate as est
from kdbench.pipeline.plan import make_plan

SUITE = Path(__file__).parent / "suites" / "synthetic.yaml"
PRICE = {"train": 0.01, "forward": 0.001, "gradient": 0.002}


def test_passes_are_counted_as_the_suite_asks(monkeypatch):
    monkeypatch.setattr(est.Prices, "of", lambda self, arch, normalize, spec, batch: PRICE)
    suite = load_suite(SUITE)
    plan = make_plan(suite, "data", "ids", {})
    seconds = est.estimate(plan, n_train=800, n_eval=120, device="cpu", todo=plan.jobs)
    by_id = {j.id: seconds[j.hash] for j in plan.jobs}
    steps = 4 * math.ceil(800 / 50)  # epochs x batches per epoch
    assert by_id["student:base:seed0"] == pytest.approx(steps * 0.01)
    # KD: the teacher's outputs are cached (no augmentation), one forward over the training set
    assert by_id["student:kd:seed0"] == pytest.approx(steps * 0.01 + math.ceil(800 / 50) * 0.001)
    # evaluation, per batch: clean 1 + noise 2 + fgsm 2 x (1 + 1) + pgd 2 x (1 + 5) forwards and gradients
    batches = math.ceil(120 / 64)
    fwd, grad = 1 + 2 + 2 + 2, 2 * 1 + 2 * 5
    probes = 40 / 64 * (5 + 2 * 5 * 3) * 0.002  # diagnostics: unbounded PGD + 3x the PGD steps
    assert by_id["evaluate:base:seed0"] == pytest.approx(batches * (fwd * 0.001 + grad * 0.002) + probes)


def test_adversarial_training_adds_its_inner_attack(monkeypatch):
    monkeypatch.setattr(est.Prices, "of", lambda self, arch, normalize, spec, batch: PRICE)
    suite = load_suite(SUITE, overrides=["students.base.method={name: pgd_at, attack: {steps: 7}}"])
    plan = make_plan(suite, "data", "ids", {})
    seconds = est.estimate(plan, n_train=800, n_eval=120, device="cpu", todo=plan.jobs)
    steps = 4 * math.ceil(800 / 50)
    assert seconds[next(j.hash for j in plan.jobs if j.id == "student:base:seed0")] == pytest.approx(
        steps * (0.01 + 7 * 0.002)
    )


def test_attack_budgets():
    from kdbench.evaluation.conditions import CONDITIONS

    def passes(name, **params):
        cls = CONDITIONS.get(name)
        return cls.build(cls.Params(**params), 0)[0].passes(8 / 255)

    assert passes("fgsm", eps=[0.03]) == (1, 1)
    assert passes("pgd", eps=[0.03], steps=10, restarts=3) == (1, 30)
    assert passes("apgd_t", eps=[0.03], steps=100, target_classes=9) == (1, 900)
    assert passes("square", eps=[0.03], queries=5000) == (5001, 0)
    assert passes("autoattack", eps=[0.03]) == (5001, 1900)  # APGD-CE 100, APGD-T 9 x 100, FAB-T 9 x 100, Square 5000


def test_the_dry_run_prints_an_estimate(tmp_path, capsys):
    assert main(["run", str(SUITE), "--out", str(tmp_path), "--dry-run", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("to run ") == 6 and err.count("  ~") == 6
    assert "estimate: about " in err and "for 6 job(s) on cpu" in err
    assert not (tmp_path / "synthetic").exists()  # nothing ran
