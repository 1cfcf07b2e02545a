"""Released Tiny-ImageNet-C / ImageNet-C folders as the corrupted copies of the clean test split:
found by file name in the clean split's order, each mismatch named, and a suite scoring them with
mCE against its reference model."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from kdbench.cli import main
from kdbench.data import DataError, load_dataset
from kdbench.data.synthetic import write_synthetic_tinyimagenet
from kdbench.evaluation.conditions import CONDITIONS

PARAMS = {"n_train": 48, "n_test": 16, "num_classes": 4, "seed": 2}
# a published model's errors per severity (made up here; ImageNet-C's is AlexNet's table)
TABLE = {"fog": [0.5, 0.55, 0.6, 0.65, 0.7], "contrast": [0.4, 0.5, 0.6, 0.7, 0.8]}


def darker(img: np.ndarray, severity: int) -> np.ndarray:
    return (img.astype(np.int64) * (6 - severity) // 6).astype(np.uint8)


def write_released(data_root, folder, corruptions=("fog",), severities=(1, 2, 3, 4, 5)):
    """Tiny-ImageNet-C in its layout: each val image darkened by severity, under its wnid."""
    notes = (folder / "val" / "val_annotations.txt").read_text().splitlines()
    for corruption in corruptions:
        for s in severities:
            for line in notes:
                name, wnid = line.split("\t")[:2]
                out = data_root / "Tiny-ImageNet-C" / corruption / str(s) / wnid
                out.mkdir(parents=True, exist_ok=True)
                img = np.array(Image.open(folder / "val" / "images" / name))
                Image.fromarray(darker(img, s)).save(out / name)


@pytest.fixture
def released(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_CACHE_DIR", str(tmp_path / "cache"))
    folder = write_synthetic_tinyimagenet(tmp_path / "data", **PARAMS)
    write_released(tmp_path / "data", folder)
    return tmp_path / "data", folder


def condition(root, severities=(1, 2)):
    cls = CONDITIONS.get("corruptions")
    (c,) = cls.build(cls.Params(names=["fog"], severities=list(severities), source="files", root=str(root)), 0)
    c.dataset = "tinyimagenet"
    return c


def test_the_corrupted_copy_follows_the_clean_split_by_file_name(released):
    root, _ = released
    d = load_dataset("tinyimagenet", root, test_subset=8, subset_seed=1)  # a subset: canonical indices kept
    c = condition(root)
    c.clean = (d.test, d.classes)
    x = d.test.images.float() / 255
    for severity in (1, 2):
        got = c.perturb(x, d.test.labels, d.test.indices, severity)
        want = torch.from_numpy(darker(d.test.images.numpy(), severity)).float() / 255
        assert torch.equal(got, want)
    # batches in another order get their own images
    order = torch.tensor([5, 0, 3])
    got = c.perturb(x[order], d.test.labels[order], d.test.indices[order], 2)
    assert torch.equal(got, torch.from_numpy(darker(d.test.images[order].numpy(), 2)).float() / 255)


def _first(root, folder):
    line = (folder / "val" / "val_annotations.txt").read_text().splitlines()[0]
    name, wnid = line.split("\t")[:2]
    return root / "Tiny-ImageNet-C" / "fog" / "1", name, wnid


@pytest.mark.parametrize("breakage", ["missing", "misfiled", "foreign class", "no severity"])
def test_each_mismatch_with_the_clean_split_is_named(released, breakage):
    root, folder = released
    base, name, wnid = _first(root, folder)
    other = next(p.name for p in base.iterdir() if p.name != wnid)
    expected = {
        "missing": f"{wnid}/{name}: missing; the clean split holds images/{name}",
        "misfiled": f"{other}/{name}: filed under class {other}, but the clean split labels images/{name} as {wnid}",
        "foreign class": "n99999999: class n99999999 is not a class of the clean split",
        "no severity": "fog/1: missing; expected the released Tiny-ImageNet-C layout",
    }[breakage]
    if breakage == "missing":
        (base / wnid / name).unlink()
    elif breakage == "misfiled":
        (base / wnid / name).rename(base / other / name)
    elif breakage == "foreign class":
        (base / "n99999999").mkdir()
    else:
        import shutil

        shutil.rmtree(base)
    d = load_dataset("tinyimagenet", root)
    c = condition(root, severities=(1,))
    c.clean = (d.test, d.classes)
    with pytest.raises(DataError) as err:
        c.perturb(d.test.images.float() / 255, d.test.labels, d.test.indices, 1)
    assert expected in str(err.value)


def test_a_suite_scores_the_released_corruptions_with_mce(released, tmp_path, capsys):
    root, folder = released
    write_released(root, folder, corruptions=("contrast",))
    model = {"arch": "cnn_tiny", "normalize": "imagenet"}
    suite = {
        "name": "tic",
        "dataset": {"name": "tinyimagenet"},
        "train": {"epochs": 1, "batch_size": 16, "lr": 0.05, "augment": False},
        "students": {"base": model | {"method": "baseline", "seeds": [0]}},
        "evaluate": {
            "batch_size": 8,
            "saliency": 0,
            "corruptions": {"names": ["fog", "contrast"], "source": "files", "reference_model": "base",
                            "published_errors": TABLE},
        },
    }  # fmt: skip
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    args = ["--data-root", str(root), "--out", str(tmp_path / "out"), "--device", "cpu", "--threads", "1"]
    assert main(["run", str(path), *args]) == 0
    run_dir = tmp_path / "out" / "tic" / "latest"
    m = pd.read_csv(run_dir / "metrics.csv", dtype={"level": str}, keep_default_na=False)
    cells = m[m.group == "corruption"]
    assert sorted(zip(cells.condition, cells.level)) == [
        (f"c:{c}", str(s)) for c in ("contrast", "fog") for s in range(1, 6)
    ]
    summary = pd.read_csv(run_dir / "summary.csv")
    mce = summary[(summary.statistic == "mce") & (summary.model == "base")]
    assert float(mce.value.iloc[0]) == pytest.approx(100.0)  # the reference model against itself
    # against the published table, by hand: 100 * sum of the model's errors / sum of the table's
    by_hand = [
        100 * (1 - cells[cells.condition == f"c:{c}"].accuracy).sum() / sum(TABLE[c]) for c in ("fog", "contrast")
    ]
    ce = summary[summary.statistic == "ce_published"].set_index("corruption").value
    assert [ce["fog"], ce["contrast"]] == pytest.approx(by_hand, rel=1e-12)
    published = summary[summary.statistic == "mce_published"]
    assert published.value.iloc[0] == pytest.approx(np.mean(by_hand), rel=1e-12) and published.cells.iloc[0] == 10
    assert json.loads((run_dir / "manifest.json").read_text())["suite"]["evaluate"]["corruptions"]["source"] == "files"
    path.write_text(yaml.safe_dump(suite | {"evaluate": {"corruptions": {"names": ["fog"]}}}))
    assert main(["validate", str(path)]) == 0  # or generated with make_tinyimagenet_c.py's parameters


def test_a_published_table_in_percent_is_refused(tmp_path, capsys):
    suite = {
        "name": "s",
        "dataset": {"name": "cifar10"},
        "students": {"b": {"arch": "cnn_tiny"}},
        "evaluate": {"corruptions": {"names": ["fog"], "published_errors": {"fog": [88.6, 90, 91, 92, 93]}}},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert main(["validate", str(path)]) == 2
    assert "published_errors.fog: expected 5 errors in (0, 1]" in capsys.readouterr().err
