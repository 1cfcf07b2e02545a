"""Architectures from torchvision and timm, named in a suite as `torchvision:NAME` / `timm:NAME`:
built with the dataset's classes and `arch_args`, never with downloaded weights, and readable by
the feature-based methods (stages given or inferred from the resolutions)."""

import importlib.util

import pytest
import torch

from kdbench.cli import main
from kdbench.config import SuiteError, load_suite
from kdbench.models import create_model, wrap
from kdbench.models.features import features, stage_names
from kdbench.results.checks import load_run

SUITE = """
name: external
dataset: {{name: synthetic, params: {{n_train: 100, n_test: 60, seed: 0}}}}
train: {{epochs: 1, batch_size: 50, lr: 0.01, augment: false}}
teachers:
  teacher: {{arch: cnn_tiny, seed: 3}}
students:
  base: {{arch: {arch}, method: baseline{extra}}}
  feat: {{arch: {arch}, method: {method}, teachers: [teacher]{extra}}}
evaluate: {{n: 60, batch_size: 60, saliency: 0}}
"""


def write(tmp_path, arch="torchvision:resnet18", method="at", extra=""):
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(arch=arch, method=method, extra=extra))
    return path


def test_torchvision_resnet18_is_built_with_the_datasets_classes_and_its_stages_inferred():
    net = create_model("torchvision:resnet18", 7)
    assert type(net).__module__.startswith("torchvision") and net.fc.out_features == 7
    model = wrap(net, "cifar10").eval()
    assert stage_names(model) == ("relu", "layer1.1.relu_1", "layer2.1.relu_1", "layer3.1.relu_1", "layer4.1.relu_1")
    x = torch.rand(2, 3, 32, 32)
    f = features(model, x)
    assert torch.equal(f.logits, model(x)) and f.embedding.shape == (2, 512)
    assert [tuple(s.shape[-2:]) for s in f.stages] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]


def test_a_feature_method_trains_a_torchvision_student_end_to_end(tmp_path):
    suite = write(tmp_path, extra=", arch_args: {zero_init_residual: true}")
    torch.set_num_threads(1)
    assert main(["run", str(suite), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    run = load_run(tmp_path / "out" / "external" / "latest")
    assert set(run.metrics.arch) >= {"torchvision:resnet18"} and set(run.metrics.model) == {"teacher", "base", "feat"}


def test_stages_given_in_the_suite_are_used_and_hashed(tmp_path):
    from kdbench.pipeline.prepare import prepare

    plain = {j.id: j.hash for j in prepare(load_suite(write(tmp_path)), None, None, fetch=False)[2].jobs}
    given = write(tmp_path, method="at", extra=", feature_stages: [layer2, layer3, layer4]")
    suite = load_suite(given)
    assert suite.students["feat"].feature_stages == ["layer2", "layer3", "layer4"]
    hashes = {j.id: j.hash for j in prepare(suite, None, None, fetch=False)[2].jobs}
    assert hashes["student:feat:seed0"] != plain["student:feat:seed0"]
    net = create_model("torchvision:resnet18", 10, feature_stages=["layer2", "layer3", "layer4"])
    assert [tuple(s.shape[-2:]) for s in features(wrap(net, "none").eval(), torch.rand(2, 3, 32, 32)).stages] == [
        (4, 4),
        (2, 2),
        (1, 1),
    ]


@pytest.mark.parametrize(
    "arch, extra, expected",
    [
        ("torchvision:resnet181", "", r"unknown torchvision architecture 'resnet181' \(did you mean 'resnet18'\?\)"),
        ("torchvision:resnet18", ", arch_args: {weights: DEFAULT}", "weights would load pretrained weights"),
        ("timm:resnet18", ", arch_args: {pretrained: true}", "pretrained would load pretrained weights"),
        ("torchvison:resnet18", "", "unknown architecture 'torchvison:resnet18'"),
    ],
)
def test_bad_external_architectures_are_refused(tmp_path, capsys, arch, extra, expected):
    if arch.startswith("timm") and importlib.util.find_spec("timm") is None:
        pytest.skip("timm not installed")
    with pytest.raises(SuiteError, match=expected):
        load_suite(write(tmp_path, arch=arch, extra=extra))
    assert main(["validate", str(tmp_path / "s.yaml")]) == 2
    assert "Traceback" not in capsys.readouterr().err
