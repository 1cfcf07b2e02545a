"""Tiny-ImageNet in its released layout, on synthetic data written in that layout: labels and order
as ImageFolder's, the decoded cache, each broken piece named, and a suite end to end through the
report at 64x64."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from kdbench.cli import main
from kdbench.data import DataError, load_dataset
from kdbench.data.synthetic import make_synthetic, write_synthetic_tinyimagenet

PARAMS = {"n_train": 48, "n_test": 16, "num_classes": 4, "seed": 2}


@pytest.fixture
def released(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return write_synthetic_tinyimagenet(tmp_path / "data", **PARAMS)


def test_it_reads_the_released_layout_in_imagefolder_order(released):
    d = load_dataset("tinyimagenet", released.parent)
    s = make_synthetic(**PARAMS)
    wnids = (released / "wnids.txt").read_text().split()
    assert d.classes == sorted(wnids) and d.num_classes == 4
    assert d.train.images.shape == (48, 3, 64, 64) and d.test.images.shape == (16, 3, 64, 64)
    # val keeps the annotation file's order and labels; the pixels are the synthetic ones, 2x2 each
    assert torch.equal(d.test.labels, s.test.labels)
    assert torch.equal(d.test.images[:, :, ::2, ::2], s.test.images)
    # train is in ImageFolder's order: classes sorted, then file names sorted
    import torchvision

    folder = torchvision.datasets.ImageFolder(str(released / "train"))
    assert [label for _, label in folder.samples] == d.train.labels.tolist()
    first = torch.from_numpy(np.array(Image.open(folder.samples[0][0]))).permute(2, 0, 1)
    assert torch.equal(d.train.images[0], first)
    again = load_dataset("tinyimagenet", released.parent)  # from the decoded cache: the same data
    assert again.identity == d.identity and torch.equal(again.train.images, d.train.images)
    assert load_dataset("tinyimagenet", released).identity == d.identity  # the folder itself as the root


@pytest.mark.parametrize(
    "breakage,expected",
    [
        (lambda f: (f / "wnids.txt").unlink(), "missing {root}/tiny-imagenet-200/wnids.txt"),
        (lambda f: shutil.rmtree(next((f / "train").iterdir()) / "images"), "/images: missing; wnids.txt names class"),
        (lambda f: (f / "val" / "val_annotations.txt").unlink(), "val_annotations.txt: missing"),
        (
            lambda f: (f / "val" / "val_annotations.txt").write_text("val_0000.png\tn99999999\t0\t0\t1\t1\n"),
            "val_annotations.txt, line 1: class n99999999 is not in wnids.txt",
        ),
        (
            lambda f: (f / "val" / "images" / "val_0003.png").unlink(),
            "val_0003.png: missing; val_annotations.txt line 4",
        ),
        (
            lambda f: (f / "val" / "images" / "val_0002.png").write_bytes(b"not an image"),
            "val_0002.png: cannot decode image",
        ),
        (
            lambda f: Image.new("RGB", (32, 32)).save(f / "val" / "images" / "val_0001.png"),
            "val_0001.png: image is 32x32 pixels, expected 64x64",
        ),
    ],
)
def test_each_broken_piece_is_named(released, breakage, expected):
    breakage(released)
    with pytest.raises(DataError) as err:
        load_dataset("tinyimagenet", released.parent)
    assert expected.format(root=released.parent) in str(err.value)


def test_a_suite_on_it_runs_end_to_end_through_the_report(released, tmp_path, capsys):
    import yaml

    model = {"arch": "cnn_tiny", "normalize": "imagenet"}
    suite = tmp_path / "tiny.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "tin",
                "dataset": {"name": "tinyimagenet"},
                "train": {"epochs": 1, "batch_size": 16, "lr": 0.05, "augment": False},
                "teachers": {"t": model | {"evaluate": "clean"}},
                "students": {
                    "base": model | {"method": "baseline", "seeds": [0]},
                    "kd": model | {"method": "kd", "teachers": ["t"], "seeds": [0]},
                },
                "evaluate": {
                    "batch_size": 16,
                    "saliency": 4,
                    "gaussian_noise": {"sigmas": [0.05]},
                    "pgd": {"norm": "L2", "eps": [0.5], "steps": 2},
                    "diagnostics": {"subset": 8, "unbounded_steps": 2, "steps_factor": 2},
                    # generated with make_tinyimagenet_c.py's parameters, frost's textures at 0.3
                    "corruptions": {"names": ["frost", "glass_blur"], "severities": [1, 5], "reference_model": "base"},
                },
            }
        )
    )
    args = ["--data-root", str(released.parent), "--out", str(tmp_path / "out"), "--device", "cpu", "--threads", "1"]
    assert main(["run", str(suite), *args]) == 0
    run_dir = tmp_path / "out" / "tin" / "latest"
    assert main(["report", str(run_dir), "-o", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "pgd_l2" in html and "worst_case_l2" in html
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["suite"]["dataset"]["name"] == "tinyimagenet"
    made = "Tiny-ImageNet-C (make_tinyimagenet_c.py, 64 px)"
    assert manifest["corruption_parameters"] == made and f"the parameters of {made}" in html
    metrics = (run_dir / "metrics.csv").read_text()
    assert "c:frost" in metrics and "c:glass_blur" in metrics
    capsys.readouterr()
    (released / "wnids.txt").unlink()
    assert main(["run", str(suite), *args, "--force"]) == 2  # a bad layout: exit 2 and the missing piece
    assert "wnids.txt" in capsys.readouterr().err


def test_frost_on_images_larger_than_its_textures_is_refused(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    head = "name: s\ndataset: {name: imagefolder, params: {image_size: 96}}\n"
    path.write_text(
        head + "students: {b: {arch: cnn_tiny, method: baseline}}\nevaluate: {corruptions: {names: [frost, fog]}}\n"
    )
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "evaluate.corruptions: frost" in err and "at most 93x93 pixels, not 96x96" in err and "(names: [fog])" in err
    path.write_text(
        head + "students: {b: {arch: cnn_tiny, method: baseline}}\nevaluate: {corruptions: {names: [fog]}}\n"
    )
    assert main(["validate", str(path)]) == 0
