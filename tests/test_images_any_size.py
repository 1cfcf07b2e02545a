"""A team's own ImageFolder at any size and ImageNet's val/ at 224: the pixels torchvision's
Resize + CenterCrop give, the standard ImageNet labels, RobustBench's subset, and each bad input
named."""

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from kdbench.cli import main
from kdbench.data import DataError, load_dataset
from kdbench.data import imagenet as imagenet_module

SIZES = [(40, 30), (50, 70), (33, 33), (64, 48)]


def write_folder(root, classes, per_class=2, seed=0):
    rng = np.random.default_rng(seed)
    for c, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = SIZES[(c + i) % len(SIZES)]
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"img_{i}.png")


def reference(folder, resize, side):
    tf = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(side), transforms.PILToTensor()])
    ds = torchvision.datasets.ImageFolder(str(folder), transform=tf)
    return torch.stack([x for x, _ in ds]), torch.tensor([y for _, y in ds])


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_CACHE_DIR", str(tmp_path / "cache"))


def test_imagefolder_at_any_size_equals_torchvision_resize_and_centre_crop(tmp_path):
    for split in ("train", "test"):
        write_folder(tmp_path / "own" / split, ["cat", "dog", "eel"], seed=len(split))
    d = load_dataset("imagefolder", tmp_path / "own", image_size=24, resize=28)
    for split, data in (("train", d.train), ("test", d.test)):
        images, labels = reference(tmp_path / "own" / split, 28, 24)
        assert data.images.shape == (6, 3, 24, 24)
        assert torch.equal(data.images, images) and torch.equal(data.labels, labels)
    assert d.classes == ["cat", "dog", "eel"]
    other = load_dataset("imagefolder", tmp_path / "own", image_size=24, resize=32)
    assert other.identity != d.identity  # the same files made into other pixels are other data
    assert load_dataset("imagefolder", tmp_path / "own", image_size=24, resize=28).identity == d.identity
    with pytest.raises(DataError, match=r"img_0.png: image is 40x30 pixels, expected 24x24"):
        load_dataset("imagefolder", tmp_path / "own", image_size=24)  # no resize: every file must be 24x24


@pytest.mark.parametrize(
    "params,expected",
    [
        ({}, "params.image_size must be a whole number of pixels from 8 to 1024"),
        ({"image_size": 64, "resize": 32}, "params.resize must be a whole number of pixels of at least image_size"),
        ({"image_size": 64, "size": 3}, "unknown parameter(s) ['size']"),
    ],
)
def test_imagefolder_params_are_checked_when_the_suite_is(tmp_path, params, expected, capsys):
    import yaml

    path = tmp_path / "s.yaml"
    suite = {"name": "s", "dataset": {"name": "imagefolder", "params": params}, "students": {"b": {"arch": "cnn_tiny"}}}
    path.write_text(yaml.safe_dump(suite))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "dataset" in err and expected in err


def imagenet_val(root, wnids):
    write_folder(root / "val", wnids)
    return root


def test_imagenet_val_gets_the_standard_labels_at_224(tmp_path):
    wnids = imagenet_module.standard_wnids()
    assert len(wnids) == 1000 and wnids == sorted(wnids)  # the standard index is the sorted wnids
    picked = [wnids[3], wnids[500], wnids[999]]
    root = imagenet_val(tmp_path / "in", picked)
    d = load_dataset("imagenet", root)
    images, _ = reference(root / "val", 256, 224)
    assert torch.equal(d.test.images, images)
    assert d.test.labels.tolist() == [3, 3, 500, 500, 999, 999]  # standard ids, not positions among 3 folders
    assert len(d.train) == 0 and d.num_classes == 1000
    (root / "val" / "n00000001").mkdir()
    with pytest.raises(DataError, match="n00000001: not an ImageNet class"):
        load_dataset("imagenet", root)


def test_robustbenchs_subset_is_its_5000_images_in_its_order(tmp_path, monkeypatch):
    ids = imagenet_module.robustbench_ids()
    assert len(ids) == len(set(ids)) == 5000
    assert {i.split("/")[0] for i in ids} <= set(imagenet_module.standard_wnids())
    wnids = imagenet_module.standard_wnids()
    root = imagenet_val(tmp_path / "in", [wnids[7], wnids[8]])
    chosen = [f"{wnids[8]}/img_1.png", f"{wnids[7]}/img_0.png"]
    monkeypatch.setattr(imagenet_module, "robustbench_ids", lambda: chosen)
    d = load_dataset("imagenet", root, subset="robustbench")
    assert d.test.labels.tolist() == [8, 7]
    full = load_dataset("imagenet", root)
    assert torch.equal(d.test.images[0], full.test.images[3]) and torch.equal(d.test.images[1], full.test.images[0])
    monkeypatch.setattr(imagenet_module, "robustbench_ids", lambda: [f"{wnids[9]}/x.JPEG"])
    with pytest.raises(DataError, match=r"x.JPEG: missing \(named by RobustBench's 5,000-image subset\)"):
        load_dataset("imagenet", root, subset="robustbench")


def test_imagenet_without_train_loads_models_only(tmp_path, capsys):
    wnids = imagenet_module.standard_wnids()
    root = imagenet_val(tmp_path / "in", wnids[:2])
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ndataset: {name: imagenet}\ntrain: {epochs: 1, batch_size: 4, augment: false}\n"
        "students: {b: {arch: cnn_tiny, normalize: imagenet, method: baseline}}\n"
        "evaluate: {batch_size: 4, saliency: 0}\n"
    )
    code = main(["run", str(suite), "--data-root", str(root), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert "has no training images here" in err and "Traceback" not in err
    with pytest.raises(DataError, match="missing .*/val/"):
        load_dataset("imagenet", tmp_path / "nothing")


def test_the_imagenet_example_validates_once_its_checkpoints_are_there(tmp_path):
    import shutil
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "imagenet-kd"
    shutil.copy(example / "suite.yaml", tmp_path / "suite.yaml")
    assert main(["validate", str(tmp_path / "suite.yaml")]) == 2  # the checkpoints are the user's to place
    (tmp_path / "checkpoints").mkdir()
    for name, arch in (
        ("resnet34-b627a593.pth", "resnet34"),
        ("resnet18-f37072fd.pth", "resnet18"),
        ("resnet18_kd_torchdistill.pth", "resnet18"),
    ):
        torch.save(getattr(torchvision.models, arch)().state_dict(), tmp_path / "checkpoints" / name)
    assert main(["validate", str(tmp_path / "suite.yaml")]) == 0


def test_corruptions_at_a_side_between_the_sets_take_the_nearest_and_say_so(tmp_path):
    import json

    for split in ("train", "test"):
        write_folder(tmp_path / "own" / split, ["a", "b"], per_class=4, seed=len(split))
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ndataset: {name: imagefolder, params: {image_size: 48, resize: 48}}\n"
        "train: {epochs: 1, batch_size: 4, augment: false}\n"
        "students: {b: {arch: cnn_tiny, method: baseline}}\n"
        "evaluate: {batch_size: 4, saliency: 0, corruptions: {names: [glass_blur, zoom_blur], severities: [5]}}\n"
    )
    out = tmp_path / "out"
    args = ["--data-root", str(tmp_path / "own"), "--out", str(out), "--device", "cpu", "--threads", "1"]
    assert main(["run", str(suite), *args]) == 0
    manifest = json.loads((out / "s" / "latest" / "manifest.json").read_text())
    assert (
        manifest["corruption_parameters"] == "Tiny-ImageNet-C (make_tinyimagenet_c.py, 64 px), the nearest set to 48 px"
    )
    metrics = (out / "s" / "latest" / "metrics.csv").read_text()
    assert "c:glass_blur" in metrics and "c:zoom_blur" in metrics
    # the report says so in its corruption section, with or without compare pairs
    for fmt in ("html", "md"):
        report = tmp_path / f"r.{fmt}"
        assert main(["report", str(out / "s" / "latest"), "--format", fmt, "-o", str(report)]) == 0
        assert "the nearest set to 48 px" in report.read_text()
