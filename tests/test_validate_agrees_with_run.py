"""What `validate` accepts, `run` does not crash on: parameters range-checked (non-finite refused,
budgets bounded with their reason, memory known in advance), meaningless suites refused, and the
failures only a run can find (a loss gone non-finite, out of memory) end with a sentence naming
the job and exit 1, leaving no half-written job behind."""

import pytest
import torch

from kdbench.cli import main

pytestmark = pytest.mark.usefixtures("fresh_plugins")

BASE = """
name: h
dataset: {{name: synthetic, params: {{n_train: 60, n_test: 40, seed: 0}}}}
train: {{epochs: {epochs}, batch_size: 20, lr: 0.05, augment: false{train}}}
teachers:
  t: {{arch: cnn_tiny, seed: 1}}
  u: {{arch: cnn_tiny, seed: 2}}
students:
  base: {{arch: cnn_tiny, method: baseline}}
  {student}
evaluate: {{n: 20, batch_size: 20, saliency: 0{evaluate}}}
{extra}
"""


def suite(
    tmp_path, student="kd: {arch: cnn_tiny, method: kd, teachers: [t]}", train="", evaluate="", extra="", epochs=1
):
    path = tmp_path / "s.yaml"
    path.write_text(BASE.format(student=student, train=train, evaluate=evaluate, extra=extra, epochs=epochs))
    return path


CASES = {
    "crd memory": (
        {"student": "crd: {arch: cnn_tiny, method: {name: crd, feat_dim: 60000, nce_k: 1000000}, teachers: [t]}"},
        r"negatives per step would take [\d.]+ GiB \(feat_dim 60000, nce_k 1000000, 60 training images, batch 20\); "
        r"the limit is 128 GiB",
    ),
    "an infinite method weight": (
        {"student": "kd: {arch: cnn_tiny, method: {name: dkd, beta: .inf}, teachers: [t]}"},
        r"students.kd.method.beta: expected a finite number \(found: inf\)",
    ),
    "a NaN temperature": (
        {"student": "kd: {arch: cnn_tiny, method: {name: kd, temperature: .nan}, teachers: [t]}"},
        "temperature must be a finite number",
    ),
    "epochs for ever": ({"epochs": 1000000000}, r"train.epochs: at most 10,000: training epochs"),
    "PGD for ever": (
        {"evaluate": ", pgd: {eps: [8/255], steps: 100000000}"},
        r"evaluate.pgd.steps: at most 10,000: an attack's iterations",
    ),
    "Square for ever": (
        {"evaluate": ", square: {eps: [8/255], queries: 100000000}"},
        r"evaluate.square.queries: at most 100,000",
    ),
    "adversarial training for ever": (
        {"student": "kd: {arch: cnn_tiny, method: {name: pgd_at, attack: {steps: 50000000}}}"},
        r"students.kd.method.attack.steps: at most 10,000",
    ),
    "a student compared with itself": (
        {"extra": "compare: [{distilled: kd, baseline: kd}]"},
        "compare.0: 'kd' compared with itself",
    ),
    "a pair listed twice": (
        {"extra": "compare: [{distilled: kd, baseline: base}, {distilled: base, baseline: kd}]"},
        "compare.1: the same two students as compare.0",
    ),
    "an ensemble of one teacher twice": (
        {"student": "kd: {arch: cnn_tiny, method: kd, teachers: [t, t], ensemble: mean_probs}"},
        "lists a teacher twice",
    ),
    "a scheduler whose period is zero": (
        {"train": ", schedule: {name: StepLR, args: {step_size: 0}}"},
        r"train.schedule.torch: args.step_size: expected a number > 0, got 0",
    ),
    "a OneCycleLR shorter than the training": (
        {"train": ", schedule: {name: OneCycleLR, args: {max_lr: 0.1, total_steps: 2}}"},
        r"OneCycleLR lasts 2 steps, but training takes 3 \(1 epochs of 60 images\)",
    ),
    "milestones going back": ({"train": ", schedule: multistep, milestones: [0.75, 0.5]"}, "milestones must increase"),
    "more target classes than the data has": (
        {"evaluate": ", apgd_t: {eps: [8/255], target_classes: 12}"},
        "12 target classes, but synthetic has 10 classes, so at most 9",
    ),
    "a fitnets hint past the first stage": (
        {"student": "kd: {arch: cnn_tiny, method: {name: fitnets, hint_stage: -40}, teachers: [t]}"},
        "hint_stage: expected greater than or equal to -16",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_case_is_refused_by_validate_with_its_message(tmp_path, capsys, case):
    import re

    kwargs, expected = CASES[case]
    path = suite(tmp_path, **kwargs)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.search(expected, err), err
    assert str(path) in err and "Traceback" not in err


def test_fractions_take_decimal_numerators_and_scientific_notation(tmp_path, capsys):
    path = suite(tmp_path, evaluate=", pgd: {eps: [0.5/255, 1.5e-1/255, '2e-3'], step_size: 0.5/255, steps: 2}")
    assert main(["validate", str(path)]) == 0
    from kdbench.config import load_suite

    pgd = load_suite(path).evaluate.pgd
    assert pgd.eps == [0.5 / 255, 0.15 / 255, 0.002] and pgd.step_size == 0.5 / 255


def test_a_loss_gone_non_finite_stops_the_run_naming_the_job_and_the_causes(tmp_path, capsys):
    (tmp_path / "bad.py").write_text(
        "from typing import Literal\nimport torch\nimport kdbench\n\n\n"
        "class P(kdbench.MethodParams):\n    name: Literal['log0'] = 'log0'\n\n\n"
        "@kdbench.register_method('log0')\nclass Log0(kdbench.TeacherMethod):\n    Params = P\n\n"
        "    def losses(self, z_s, z_t, labels, progress):\n"
        "        return {'ce': torch.nn.functional.cross_entropy(z_s, labels), 'bad': torch.log(z_s * 0).mean()}\n"
    )
    path = suite(tmp_path, student="kd: {arch: cnn_tiny, method: log0, teachers: [t]}", extra="plugins: [bad.py]")
    torch.set_num_threads(1)
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "student:kd:seed0: the loss is not finite (nan or inf) in epoch 1, in the term(s) bad" in err
    assert "the method's weights" in err and "learning rate" in err and "Traceback" not in err
    jobs = tmp_path / "out" / "_cache" / "jobs"
    assert not [p for p in jobs.iterdir() if p.name.startswith(".")]  # nothing half-written
    assert not (tmp_path / "out" / "h").exists()  # no run directory for a failed run


def test_out_of_memory_names_the_job_and_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    from kdbench.pipeline import jobs

    def oom(self, group, outs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 6400000000000 bytes")

    monkeypatch.setattr(jobs.JobRunner, "run_evaluate", oom)
    torch.set_num_threads(1)
    assert main(["run", str(suite(tmp_path)), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "evaluate:t:seed1" in err and "out of memory (CUDA out of memory. Tried to allocate" in err
    assert "lower the recipe's batch_size, evaluate.batch_size" in err and "Traceback" not in err
    done = [p for p in (tmp_path / "out" / "_cache" / "jobs").iterdir()]
    assert all(not p.name.startswith(".") for p in done)  # the trained models stay, no evaluation half-written
