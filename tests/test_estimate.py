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


def fixed_prices(monkeypatch, perturb=0.0001):
    monkeypatch.setattr(est.Prices, "of", lambda self, arch, normalize, spec, batch, channels_last=False: PRICE)
    monkeypatch.setattr(est.Prices, "perturb", lambda self, cond, level, images=16: perturb)


def test_passes_are_counted_as_the_suite_asks(monkeypatch):
    fixed_prices(monkeypatch)
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
    noise = 2 * 120 * 0.0001  # making the noisy images: 2 sigmas x 120 images
    assert by_id["evaluate:base:seed0"] == pytest.approx(batches * (fwd * 0.001 + grad * 0.002) + probes + noise)


def test_conditions_with_their_own_n_and_a_teacher_cached_once(monkeypatch):
    fixed_prices(monkeypatch)
    suite = load_suite(SUITE, overrides=["evaluate.pgd.n=30", "students.kd.seeds=[0, 1]"])
    plan = make_plan(suite, "data", "ids", {})
    seconds = est.estimate(plan, n_train=800, n_eval=120, device="cpu", todo=plan.jobs, group_size=2)
    by_id = {j.id: seconds[j.hash] for j in plan.jobs}
    steps = 4 * math.ceil(800 / 50)
    # the teacher's outputs are made once, by the first student that needs them
    assert by_id["student:kd:seed0"] == pytest.approx(steps * 0.01 + math.ceil(800 / 50) * 0.001)
    assert by_id["student:kd:seed1"] == pytest.approx(steps * 0.01)
    # PGD on its first 30 examples: one batch of 64, not two
    full = 2 * ((1 + 2 + 2) * 0.001 + 2 * 0.002)  # two batches: clean, 2 sigmas, FGSM at 2 eps
    pgd = 1 * 2 * (0.001 + 5 * 0.002)
    probes = 30 / 64 * (5 + 2 * 5 * 3) * 0.002  # the probes stay within the examples PGD covers
    evals = [j for j in plan.jobs if j.kind == "evaluate"]
    first, second = seconds[evals[0].hash], seconds[evals[1].hash]
    assert second == pytest.approx(full + pgd + probes)
    assert first == pytest.approx(second + 2 * 120 * 0.0001)  # the group's noisy images are made once


def test_wall_clock_runs_groups_as_the_local_executor_does():
    suite = load_suite(SUITE)
    plan = make_plan(suite, "data", "ids", {})
    seconds = {j.hash: {"teacher": 10.0, "student": 4.0, "evaluate": 1.0}[j.kind] for j in plan.jobs}
    # the teacher (10) with base (4) beside it, then base's evaluation; kd (4) once the teacher is
    # done, the teacher's evaluation beside it, then kd's
    one = est.wall_clock(plan.jobs, seconds, workers=1, group_size=1)
    two = est.wall_clock(plan.jobs, seconds, workers=2, group_size=1)
    assert one == pytest.approx(sum(seconds.values()))
    assert two == pytest.approx(10 + 4 + 1)


def test_adversarial_training_adds_its_inner_attack(monkeypatch):
    fixed_prices(monkeypatch)
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
