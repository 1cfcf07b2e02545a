"""The architecture zoo: names, shapes, sizes, the [0,1] wrapper and checkpoint loading."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from kdbench.models import MODELS, NORMALIZATIONS, Normalized, create_model, wrap
from kdbench.models.checkpoint import CheckpointError, load_into, load_state_dict_file
from kdbench.registry import UnknownName

# Published sizes for 10 classes (He et al.; CRD / mdistiller tables; Zagoruyko & Komodakis; kuangliu).
PARAMS_M = {
    "resnet20": 0.27,
    "resnet56": 0.86,
    "resnet110": 1.7,
    "resnet8x4": 1.2,
    "resnet32x4": 7.4,
    "wrn_16_2": 0.70,
    "wrn_40_2": 2.2,
    "wrn_28_10": 36.5,
    "mobilenetv2": 2.2,
    "resnet18": 11.2,
}
EXPECTED_NAMES = {
    "cnn_tiny",
    "cnn_small",
    "cnn_wide",
    "resnet8",
    "resnet20",
    "resnet32",
    "resnet56",
    "resnet110",
    "resnet8x4",
    "resnet32x4",
    "wrn_16_2",
    "wrn_40_2",
    "wrn_28_10",
    "mobilenetv2",
    "resnet18",
}


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _autoattack_checkpoint() -> Path | None:
    spec = importlib.util.find_spec("pyautoattack")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "examples" / "model_test.pt"
    return path if path.is_file() else None


def test_registry_holds_exactly_the_suite_architectures():
    assert set(MODELS.names()) == EXPECTED_NAMES


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_every_architecture_maps_cifar_batch_to_logits(name):
    torch.manual_seed(0)
    net = create_model(name).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()
    assert net.arch_name == name


@pytest.mark.parametrize("name", ["cnn_small", "resnet20", "wrn_16_2", "mobilenetv2", "resnet18"])
def test_num_classes_reaches_the_head(name):
    with torch.no_grad():
        assert create_model(name, num_classes=100).eval()(torch.rand(1, 3, 32, 32)).shape == (1, 100)


@pytest.mark.parametrize("name,millions", sorted(PARAMS_M.items()))
def test_parameter_counts_match_the_literature(name, millions):
    measured = _params(create_model(name)) / 1e6
    assert abs(measured - millions) / millions < 0.05, f"{name}: {measured:.3f}M vs {millions}M"


def test_small_cnns_are_cpu_sized():
    small, wide = _params(create_model("cnn_small")), _params(create_model("cnn_wide"))
    assert 0.05e6 < small < 0.3e6
    assert 8 * small < wide < 24 * small  # 4x the channels: ~16x the conv weights


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_the_plain_cnns_pool_as_nn_maxpool2d_does(layout):
    """Their pooling runs in channels-last memory on the CPU for speed: the same logits, input
    gradients and weight gradients as nn.MaxPool2d(2), bit for bit, in train and eval mode."""
    from torch import nn

    torch.manual_seed(0)
    ours = create_model("cnn_small")
    ref = create_model("cnn_small")
    ref.load_state_dict(ours.state_dict())
    for block in ref.features:
        block[3] = nn.MaxPool2d(2)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    ours, ref = ours.to(memory_format=fmt), ref.to(memory_format=fmt)
    for train in (True, False):
        ours.train(train), ref.train(train)
        x = torch.rand(8, 3, 32, 32).contiguous(memory_format=fmt)
        xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        za, zb = ours(xa), ref(xb)
        assert torch.equal(za, zb)
        za.logsumexp(1).sum().backward()
        zb.logsumexp(1).sum().backward()
        assert torch.equal(xa.grad, xb.grad)
        assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours.parameters(), ref.parameters()))
        ours.zero_grad(), ref.zero_grad()


def test_crd_key_layout_so_mdistiller_teachers_load():
    keys = set(create_model("resnet32x4").state_dict())
    assert {
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.downsample.0.weight",
        "layer3.4.bn2.weight",
        "fc.weight",
        "fc.bias",
    } <= keys
    assert "layer1.1.downsample.0.weight" not in keys  # projection only where the shape changes
    assert create_model("resnet8x4").layer3[0].conv1.out_channels == 256
    wrn = set(create_model("wrn_40_2").state_dict())
    assert {"block1.layer.0.convShortcut.weight", "block3.layer.5.bn2.weight", "bn1.weight", "fc.weight"} <= wrn
    assert "block1.layer.1.convShortcut.weight" not in wrn


# 'resnet20' and 'resnet32' tie on difflib's ratio (0.875); the registry must break the tie by shared prefix.
def test_unknown_architecture_suggests_the_close_name():
    with pytest.raises(UnknownName) as err:
        create_model("resnet2O")
    assert "did you mean 'resnet20'" in str(err.value)


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(UnknownName, match="unknown architecture 'resnet2O' \\(did you mean 'resnet"):
        create_model("resnet2O")


# ---------------------------------------------------------------------------------------------- Normalized
def test_normalized_is_exactly_x_minus_mean_over_std():
    mean, std = NORMALIZATIONS["cifar10"]
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen["x"] = x
            return x.sum(dim=(2, 3))

    x = torch.rand(4, 3, 32, 32)
    Normalized(Spy(), mean, std)(x)
    by_hand = torch.stack([(x[:, c] - mean[c]) / std[c] for c in range(3)], dim=1)
    torch.testing.assert_close(seen["x"], by_hand, rtol=0, atol=1e-6)

    Normalized(Spy(), None)(x)
    assert seen["x"] is x  # identity wrapper passes the very tensor through


def test_cifar10_statistics_are_the_training_set_ones():
    mean, std = NORMALIZATIONS["cifar10"]
    assert mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=1e-4)
    assert std == pytest.approx((0.2470, 0.2435, 0.2616), abs=2e-4)
    assert NORMALIZATIONS["none"] is None


def test_wrapper_state_dict_is_the_bare_architectures():
    bare = create_model("resnet20")
    wrapped = wrap(bare, "cifar10")
    assert list(wrapped.net.state_dict()) == list(create_model("resnet20").state_dict())
    # mean/std are not persisted: saving the wrapper adds nothing but the `net.` prefix.
    assert list(wrapped.state_dict()) == ["net." + k for k in bare.state_dict()]
    assert wrapped.double().mean.dtype == torch.float64  # buffers still follow the module


def test_wrap_accepts_name_pair_or_none_and_rejects_the_rest():
    net = create_model("cnn_small")
    assert wrap(net, None).mean is None and wrap(net, "none").mean is None
    custom = wrap(net, ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    assert custom.std.flatten().tolist() == [0.25, 0.25, 0.25]
    with pytest.raises(UnknownName, match="did you mean 'cifar10'"):
        wrap(net, "cifar1O")
    with pytest.raises(TypeError, match="already Normalized"):
        wrap(wrap(net, "cifar10"), "cifar10")
    with pytest.raises(ValueError, match="both mean and std"):
        Normalized(net, (0.5, 0.5, 0.5), None)


# ---------------------------------------------------------------------------------------------- checkpoints
def test_loader_unwraps_containers_and_dataparallel_prefix(tmp_path):
    sd = create_model("resnet8").state_dict()
    cases = {
        "sd.pt": {"state_dict": {"module." + k: v for k, v in sd.items()}},
        "kuangliu.pt": {"net": {"module." + k: v for k, v in sd.items()}, "acc": 93.1, "epoch": 199},
        "mdistiller.pt": {"model": sd, "optimizer": {"state": {}, "param_groups": []}, "best_acc": 70.0},
        "plain.pt": sd,
    }
    for fname, obj in cases.items():
        torch.save(obj, tmp_path / fname)
        got = load_state_dict_file(tmp_path / fname)
        assert list(got) == list(sd), fname
        load_into(create_model("resnet8"), got, source=fname)


def test_wrong_architecture_names_file_arch_and_keys(tmp_path):
    path = tmp_path / "resnet20_teacher.pt"
    torch.save(create_model("resnet20").state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_into(create_model("resnet8"), load_state_dict_file(path), source=str(path))
    msg = str(err.value)
    assert str(path) in msg and "'resnet8'" in msg
    assert "unexpected keys" in msg and "layer1.1.conv1.weight" in msg
    assert isinstance(err.value, ValueError)


def test_shape_mismatch_and_missing_keys_are_listed(tmp_path):
    sd = create_model("resnet20", num_classes=100).state_dict()
    del sd["bn1.weight"]
    with pytest.raises(CheckpointError) as err:
        load_into(create_model("resnet20"), sd, source="c100.pt")
    msg = str(err.value)
    assert "fc.weight: checkpoint (100, 64) vs model (10, 64)" in msg
    assert "1 missing keys: bn1.weight" in msg and "c100.pt" in msg


def test_load_into_a_wrapper_fills_its_bare_net():
    src = create_model("resnet8")
    wrapped = wrap(create_model("resnet8"), "cifar10")
    load_into(wrapped, src.state_dict(), source="mem")
    torch.testing.assert_close(wrapped.net.fc.weight, src.fc.weight)


def test_files_that_are_not_weight_dicts_are_named(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    listed = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listed)
    mixed = tmp_path / "mixed.pt"
    torch.save({"w": torch.zeros(1), "note": "hi"}, mixed)
    for path in (text, listed, mixed, tmp_path / "absent.pt"):
        with pytest.raises(CheckpointError, match=str(path)):
            load_state_dict_file(path)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "obj": torch.nn.ReLU()}, path)
    with pytest.raises(CheckpointError, match="refuse"):
        load_state_dict_file(path)


# ---------------------------------------------------------------------------------------------- real weights
@pytest.mark.skipif(_autoattack_checkpoint() is None, reason="pyautoattack (with its example checkpoint) not installed")
def test_autoattack_example_checkpoint_loads_strict_into_resnet18():
    path = _autoattack_checkpoint()
    net = wrap(load_into(create_model("resnet18"), load_state_dict_file(path), source=str(path)), "none").eval()
    with torch.no_grad():
        out = net(torch.rand(4, 3, 32, 32))
    assert out.shape == (4, 10) and torch.isfinite(out).all()


# optional, beside the checkout
CIFAR_TEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg" / "test"


@pytest.mark.skipif(
    _autoattack_checkpoint() is None or not CIFAR_TEST.is_dir(),
    reason="needs pyautoattack's checkpoint and the CIFAR-10 test images",
)
def test_autoattack_checkpoint_classifies_real_images():
    # Guards the input convention: this net was trained on raw [0,1]; with the cifar10 wrapper it falls to ~26%.
    import torchvision.transforms.functional as TF
    from PIL import Image

    classes = sorted(p.name for p in CIFAR_TEST.iterdir() if p.is_dir())
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((CIFAR_TEST / cls).iterdir())[:10]:
            xs.append(TF.to_tensor(Image.open(f).convert("RGB")))
            ys.append(label)
    path = _autoattack_checkpoint()
    net = wrap(load_into(create_model("resnet18"), load_state_dict_file(path), source=str(path)), "none").eval()
    with torch.no_grad():
        acc = (net(torch.stack(xs)).argmax(1) == torch.tensor(ys)).float().mean().item()
    assert acc >= 0.7, acc
