"""Students trained elsewhere, loaded from their checkpoints: scored to the digit of plain PyTorch,
hashed by their bytes, paired and gated as trained ones; the gate-your-model example trips its gate
on a worse release."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kdbench.cli import main
from kdbench.config import SuiteError, load_suite
from kdbench.data import load_dataset
from kdbench.models import create_model
from kdbench.models.normalized import NORMALIZATIONS
from kdbench.results.checks import load_run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "gate-your-model"


pytestmark = pytest.mark.usefixtures("fresh_plugins")


SUITE = """
name: loaded
dataset: {name: synthetic, params: {n_train: 100, n_test: 150, seed: 3}}
teachers:
  teacher: {arch: cnn_small, checkpoint: t.pt, evaluate: clean}
students:
  base: {arch: cnn_tiny, method: baseline, checkpoints: {0: base0.pt, 1: base1.pt}}
  kd: {arch: cnn_tiny, method: kd, teachers: [teacher], checkpoints: {0: kd0.pt, 1: kd1.pt}}
evaluate: {batch_size: 64, fgsm: {eps: [4/255]}, saliency: 0}
"""


def _save(folder: Path, name: str, arch: str, seed: int) -> dict:
    torch.manual_seed(seed)
    net = create_model(arch, 10)
    with torch.no_grad():  # not a freshly initialised net: BN statistics away from 0 and 1
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), folder / name)
    return net.state_dict()


def test_loaded_students_score_exactly_as_plain_pytorch_and_hash_their_bytes(tmp_path):
    _save(tmp_path, "t.pt", "cnn_small", 9)
    states = {n: _save(tmp_path, f"{n}.pt", "cnn_tiny", i) for i, n in enumerate(("base0", "base1", "kd0", "kd1"))}
    (tmp_path / "suite.yaml").write_text(SUITE)
    torch.set_num_threads(1)
    assert main(["run", str(tmp_path / "suite.yaml"), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    run = load_run(tmp_path / "out" / "loaded" / "latest")
    # plain PyTorch on the same test images: normalise, forward in eval mode, argmax
    test = load_dataset("synthetic", n_train=100, n_test=150, seed=3).test
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALIZATIONS["cifar10"])
    x = (test.images.float() / 255 - mean) / std
    for (model, seed), name in {("base", 0): "base0", ("base", 1): "base1", ("kd", 0): "kd0", ("kd", 1): "kd1"}.items():
        net = create_model("cnn_tiny", 10)
        net.load_state_dict(states[name])
        with torch.no_grad():
            right = (net.eval()(x).argmax(1) == test.labels).numpy()
        row = run.metrics[
            (run.metrics.model == model) & (run.metrics.seed == seed) & (run.metrics.condition == "clean")
        ]
        assert int(row.correct.iloc[0]) == int(right.sum()) and float(row.accuracy.iloc[0]) == right.mean()
        assert np.array_equal(
            run.correct[row.index[0]], right[np.argsort(run.example_index)][np.argsort(np.argsort(run.example_index))]
        )
    assert set(run.metrics.role) == {"teacher", "baseline", "distilled"}
    # the job hash covers the file's bytes: a changed checkpoint is a new job, the others stay
    from kdbench.pipeline.prepare import prepare

    before = {j.id: j.hash for j in prepare(load_suite(tmp_path / "suite.yaml"), None, None, fetch=False)[2].jobs}
    _save(tmp_path, "kd1.pt", "cnn_tiny", 99)
    after = {j.id: j.hash for j in prepare(load_suite(tmp_path / "suite.yaml"), None, None, fetch=False)[2].jobs}
    assert {j for j in before if before[j] != after[j]} == {"student:kd:seed1", "evaluate:kd:seed1"}


@pytest.mark.parametrize(
    "student, expected",
    [
        ("{arch: cnn_tiny, method: baseline, checkpoints: {0: a.pt, '0': b.pt}}", "seed 0 is listed twice"),
        (
            "{arch: cnn_tiny, method: baseline, checkpoints: {0: missing.pt}}",
            r"students.s.checkpoints.0: '.*missing.pt': no such file",
        ),
        ("{arch: cnn_tiny, method: baseline, checkpoints: {0: a.pt}, train: {epochs: 2}}", "not trained: drop 'train'"),
        ("{arch: cnn_tiny, method: baseline, checkpoints: {0: a.pt}, seeds: [3]}", "seeds are its checkpoints' keys"),
    ],
)
def test_bad_checkpoint_students_are_refused(tmp_path, student, expected):
    (tmp_path / "a.pt").write_bytes(b"x")
    (tmp_path / "b.pt").write_bytes(b"x")
    (tmp_path / "s.yaml").write_text(f"dataset: {{name: synthetic}}\nstudents:\n  s: {student}\n")
    with pytest.raises(SuiteError, match=expected):
        load_suite(tmp_path / "s.yaml")


def test_a_checkpoint_that_does_not_fit_names_its_keys(tmp_path, capsys):
    _save(tmp_path, "a.pt", "cnn_small", 0)  # the wrong architecture's weights
    (tmp_path / "s.yaml").write_text(
        "dataset: {name: synthetic, params: {n_train: 50, n_test: 50}}\n"
        "students:\n  s: {arch: cnn_tiny, method: baseline, checkpoints: {0: a.pt}}\n"
    )
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "does not fit architecture 'cnn_tiny'" in err and "shape mismatches" in err and "Traceback" not in err


def test_pickled_objects_in_a_student_checkpoint_are_refused(tmp_path, capsys):
    torch.save({"net": torch.nn.Linear(2, 2)}, tmp_path / "a.pt")  # a module, not a state_dict
    (tmp_path / "s.yaml").write_text(
        "dataset: {name: synthetic, params: {n_train: 50, n_test: 50}}\n"
        "students:\n  s: {arch: cnn_tiny, method: baseline, checkpoints: {0: a.pt}}\n"
    )
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "refuse" in err and "weights_only" in err and "Traceback" not in err


def test_the_gate_your_model_example_trips_on_a_worse_release(tmp_path):
    """The example as its README runs it, smaller: train the team's checkpoints, score, bless; then
    a release whose distilled students lost a class: the gate fails (exit 1)."""
    work = tmp_path / "team"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("checkpoints", "results", "baseline"))
    suite = work / "suite.yaml"
    text = suite.read_text()
    text = text.replace(", 3: checkpoints/base_s3.pt", "").replace(", 3: checkpoints/kd_s3.pt", "")
    suite.write_text(text.replace("fgsm: {eps: [2/255]}", "").replace("pgd: {eps: [2/255], steps: 5}", ""))
    train = [
        sys.executable,
        str(work / "train_team_models.py"),
        "--out",
        str(work / "checkpoints"),
        "--seeds",
        "0",
        "1",
        "2",
        "--epochs",
        "3",
    ]
    subprocess.run(train, check=True, capture_output=True)
    out = ["--out", str(work / "results"), "--device", "cpu", "--threads", "1"]
    assert main(["run", str(suite), *out]) == 0
    assert main(["baseline", str(work / "results" / "team-gate" / "latest"), "-o", str(work / "baseline")]) == 0
    assert main(["gate", str(work / "results" / "team-gate" / "latest"), "--baseline", str(work / "baseline")]) == 0
    subprocess.run([*train, "--only", "kd", "--bug"], check=True, capture_output=True)
    assert main(["run", str(suite), *out]) == 0
    assert main(["gate", str(work / "results" / "team-gate" / "latest"), "--baseline", str(work / "baseline")]) == 1
