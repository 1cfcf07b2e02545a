"""The RobustBench adapter, without the network: import, listing, errors, and hand-placed weights."""

from __future__ import annotations

import importlib.util
import sys
import time

import pytest
import torch

# Not importorskip: a plain `import robustbench` is exactly what fails and what kdbench.models.zoo works around.
if importlib.util.find_spec("robustbench") is None:
    pytest.skip("robustbench not installed", allow_module_level=True)

from kdbench.models import (
    Normalized,
    create_model,
    zoo,
)
from kdbench.models.zoo import ZooError, list_robustbench, load_robustbench


@pytest.fixture
def offline(monkeypatch):
    """Every gdrive download fails at once, as it does without network, and is counted."""
    calls = []

    def refuse(gdrive_id, fname_save):
        calls.append(str(fname_save))
        raise ConnectionError("Failed to establish a new connection: [Errno -2] Name or service not known")

    monkeypatch.setattr(zoo._robustbench().utils, "download_gdrive_new", refuse)
    return calls


def test_robustbench_imports_without_faking_its_broken_dependencies():
    rb = zoo._robustbench()
    assert callable(rb.utils.load_model)
    # Nothing fake left behind for other code probing for these.
    for dep in ("autoattack", "pkg_resources"):
        if importlib.util.find_spec(dep) is None:
            assert dep not in sys.modules
    assert "robustbench.eval" not in sys.modules  # benchmark() never imported
    from robustbench import load_model

    assert load_model is rb.utils.load_model


def test_listing_has_the_known_models():
    names = list_robustbench("cifar10", "Linf")
    assert {"Standard", "Carmon2019Unlabeled"} <= set(names)
    assert len(names) == len(set(names)) > 50
    assert "Standard" in list_robustbench("cifar10", "L2")


def test_bad_dataset_or_threat_model_is_named():
    with pytest.raises(ZooError, match="unknown RobustBench dataset 'cifar11' \\(did you mean 'cifar10'"):
        list_robustbench("cifar11")
    with pytest.raises(ZooError, match="threat model 'linf' \\(did you mean 'Linf'"):
        list_robustbench("cifar10", "linf")


def test_unknown_model_suggests_the_close_name(tmp_path, offline):
    with pytest.raises(ZooError) as err:
        load_robustbench("Carmon2019Unlabelled", model_dir=tmp_path)
    assert "did you mean 'Carmon2019Unlabeled'" in str(err.value)
    assert "cifar10/Linf" in str(err.value)
    assert offline == []  # rejected before any download attempt


def test_offline_load_says_where_to_put_the_weights(tmp_path, offline):
    start = time.monotonic()
    with pytest.raises(ZooError) as err:
        load_robustbench("Standard", model_dir=tmp_path)
    assert time.monotonic() - start < 20
    msg = str(err.value)
    expected = tmp_path / "cifar10" / "Linf" / "Standard.pt"
    assert "offline" in msg and f"model_dir={tmp_path}" in msg and str(expected) in msg
    assert offline == [str(expected)]  # robustbench tried exactly the path we tell the user about
    assert zoo.expected_weight_paths("Standard", model_dir=tmp_path) == [expected]


def test_unreadable_weights_file_is_reported_as_such(tmp_path, offline):
    path = tmp_path / "cifar10" / "Linf" / "Standard.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a download")
    with pytest.raises(ZooError, match="do not load") as err:
        load_robustbench("Standard", model_dir=tmp_path)
    assert str(path) in str(err.value) and offline == []


def test_hand_placed_weights_load_without_network(tmp_path, offline):
    # 'Standard' is a WRN-28-10 on raw [0,1] inputs; our wrn_28_10 shares RobustBench's key layout,
    # so a randomly initialised one stands in for the real checkpoint.
    torch.manual_seed(0)
    ours = create_model("wrn_28_10").eval()
    with torch.no_grad():  # non-trivial BN statistics, so a skipped load would show
        for m in ours.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "cifar10" / "Linf" / "Standard.pt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {"module." + k: v for k, v in ours.state_dict().items()}}, path)

    model = load_robustbench("Standard", model_dir=tmp_path)

    assert offline == []
    assert isinstance(model, Normalized) and model.mean is None
    assert not model.training and not model.net.training
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ours(x))  # same weights, same forward: the WRN blocks agree


def test_ensemble_paths_follow_robustbench_naming(tmp_path):
    rb = zoo._robustbench()
    ds, tm = rb.Dataset("cifar10"), rb.ThreatModel("Linf")
    name = next((n for n, e in rb.models[ds][tm].items() if isinstance(e["gdrive_id"], list)), None)
    if name is None:
        pytest.skip("no ensemble in this robustbench release")
    paths = zoo.expected_weight_paths(name, model_dir=tmp_path)
    assert len(paths) > 1 and paths[0].name == f"{name}.pt_m0.pt"


def test_a_zoo_teachers_job_hash_covers_its_weights(tmp_path, offline, monkeypatch):
    from kdbench.config import load_suite
    from kdbench.models import teachers, wrap
    from kdbench.models.teachers import UNFETCHED
    from kdbench.pipeline import prepare as runner

    suite_file = tmp_path / "zoo.yaml"
    suite_file.write_text("""
name: zoo
dataset: {name: synthetic, params: {n_train: 40, n_test: 20}}
train: {epochs: 1, batch_size: 20}
teachers:
  rb: {robustbench: Standard}
students:
  base: {arch: cnn_tiny, method: baseline, seeds: [0]}
  kd: {arch: cnn_tiny, method: kd, teachers: [rb], seeds: [0]}
""")
    suite = load_suite(suite_file)
    model_dir = tmp_path / "rb"
    weights = model_dir / "cifar10" / "Linf" / "Standard.pt"
    loaded = []

    def fake_load(spec, where, dataset="cifar10"):  # a small stand-in whose weights follow the file's bytes
        loaded.append(where)
        torch.manual_seed(len(weights.read_bytes()))
        return wrap(create_model("cnn_tiny"), "none")

    monkeypatch.setattr(teachers, "load_robustbench_teacher", fake_load)

    def hashes(fetch=True):
        plan = runner.prepare(suite, None, model_dir, fetch=fetch)[2]
        return {j.id: j.hash for j in plan.jobs}, plan.jobs[0].spec

    (dry, spec) = hashes(fetch=False)  # a dry run with nothing downloaded loads nothing
    assert loaded == [] and spec["weights_sha256"] == UNFETCHED
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"one")
    first, spec = hashes()
    assert spec["weights_sha256"] != UNFETCHED and loaded == [model_dir] and first != dry
    weights.write_bytes(b"other")  # same name, other weights: the teacher and all that reads it rerun
    second, _ = hashes()
    assert second["teacher:rb:seed0"] != first["teacher:rb:seed0"]
    assert second["student:kd:seed0"] != first["student:kd:seed0"]
    assert second["student:base:seed0"] == first["student:base:seed0"]
    assert offline == []


def test_a_zoo_teacher_distils_a_robust_student_offline(tmp_path, offline):
    """A RobustBench teacher from hand-placed weights (no network) teaches an rslad student, end to end."""
    from kdbench.cli import main
    from kdbench.results.read import read_run

    torch.manual_seed(0)
    model_dir = tmp_path / "out" / "_cache" / "robustbench"  # where the runner's adapter looks
    path = model_dir / "cifar10" / "Linf" / "Standard.pt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {"module." + k: v for k, v in create_model("wrn_28_10").state_dict().items()}}, path)
    suite = tmp_path / "zoo_rslad.yaml"
    suite.write_text("""
name: zoo_rslad
dataset: {name: synthetic, params: {n_train: 24, n_test: 12}}
train: {epochs: 1, batch_size: 12, augment: false}
teachers:
  rb: {robustbench: Standard, threat_model: Linf, evaluate: clean}
students:
  at: {arch: cnn_tiny, method: {name: pgd_at, attack: {steps: 1}}}
  rslad: {arch: cnn_tiny, method: {name: rslad, attack: {steps: 1}}, teachers: [rb]}
evaluate: {clean: {}}
""")
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu", "--threads", "1"]) == 0
    run = read_run(tmp_path / "out" / "zoo_rslad" / "latest")
    assert offline == []
    assert set(run.metrics.model) == {"rb", "at", "rslad"}
    assert run.manifest["compare"] == [{"distilled": "rslad", "baseline": "at"}]
