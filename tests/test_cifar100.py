"""CIFAR-100: both layouts, fine labels, its normalisation, CIFAR-100-C (generated and released),
and a suite that trains and scores 100-class models end to end. Tiny synthetic data; nothing downloads."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch

from kdbench.cli import main
from kdbench.data import DataError, Splits, cifar, cifar10c, load_dataset, writers
from kdbench.data.synthetic import make_synthetic


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KDBENCH_DATA_ROOT", raising=False)


def hundred() -> Splits:
    return make_synthetic(n_train=300, n_test=200, num_classes=100, seed=3)


def test_both_layouts_load_the_same_fine_labelled_images(tmp_path):
    src = hundred()
    folder = writers.write_cifar_pickles(tmp_path / "pk", src, release=cifar.CIFAR100)
    assert sorted(p.name for p in folder.iterdir()) == ["meta", "test", "train"] and folder.name == "cifar-100-python"
    writers.write_imagefolder(tmp_path / "if", src)
    pk, imf = load_dataset("cifar100", tmp_path / "pk"), load_dataset("cifar100", tmp_path / "if")
    assert pk.identity.startswith("cifar100-pickle:") and imf.identity.startswith("cifar100-imagefolder:")
    assert pk.num_classes == imf.num_classes == 100
    # ImageFolder numbers the classes by their sorted folder names (class0, class1, class10, ...)
    rank = {name: i for i, name in enumerate(imf.classes)}
    to_folder = torch.tensor([rank[name] for name in src.classes])
    for split in ("train", "test"):
        a, b, want = getattr(pk, split), getattr(imf, split), getattr(src, split)
        assert torch.equal(a.images, want.images) and torch.equal(a.labels, want.labels)
        order = torch.sort(to_folder[want.labels], stable=True).indices
        assert torch.equal(b.images, want.images[order]) and torch.equal(b.labels, to_folder[want.labels][order])
    # a CIFAR-10 root is not a CIFAR-100 one
    with pytest.raises(
        DataError, match="no CIFAR-100 data found .*cifar-100-python/ folder from cifar-100-python.tar.gz"
    ):
        load_dataset("cifar100", tmp_path / "nothing")


def test_the_fine_labels_are_read_not_the_coarse(tmp_path):
    src = hundred()
    folder = writers.write_cifar_pickles(tmp_path, src, release=cifar.CIFAR100)
    # the release's batches carry both; add coarse labels that differ, as torchvision's files do
    for name in ("train", "test"):
        entry = pickle.loads((folder / name).read_bytes())
        entry["coarse_labels"] = [v // 5 for v in entry["fine_labels"]]
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = pickle.loads((folder / "meta").read_bytes())
    meta["coarse_label_names"] = [f"super{i}" for i in range(20)]
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    got = load_dataset("cifar100", tmp_path)
    assert torch.equal(got.test.labels, src.test.labels) and got.classes == src.classes and len(got.classes) == 100


def test_a_doctored_pickle_cannot_run_code(tmp_path):
    folder = writers.write_cifar_pickles(tmp_path, hundred(), release=cifar.CIFAR100)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    buf = io.BytesIO()
    pickle.dump({"fine_label_names": Evil()}, buf, protocol=2)
    (folder / "meta").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="refusing to load posix.system|refusing to load os.system"):
        load_dataset("cifar100", tmp_path)


def test_subset_sizes_are_checked_against_cifar100(capsys):
    from pydantic import ValidationError

    from kdbench.config import DatasetSpec

    with pytest.raises(ValidationError, match="train_subset 60000 is larger than CIFAR-100's train split"):
        DatasetSpec.model_validate({"name": "cifar100", "train_subset": 60000})


def test_normalisation_is_mdistillers():
    from kdbench.models import NORMALIZATIONS

    assert NORMALIZATIONS["cifar100"] == ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))


def test_corruptions_export_from_cifar100(tmp_path, capsys):
    writers.write_cifar_pickles(tmp_path / "data", hundred(), release=cifar.CIFAR100)
    code = main(
        [
            "corruptions",
            "export",
            "--dataset",
            "cifar100",
            "--data-root",
            str(tmp_path / "data"),
            "--names",
            "fog",
            "contrast",
            "--severities",
            "1",
            "5",
            "--out",
            str(tmp_path / "c100"),
            "--workers",
            "1",
        ]
    )
    assert code == 0, capsys.readouterr().err
    labels = np.load(tmp_path / "c100" / "labels.npy")
    fog = np.load(tmp_path / "c100" / "fog.npy")
    assert (
        fog.shape == (400, 32, 32, 3)
        and labels.max() > 9
        and np.array_equal(labels[:200], hundred().test.labels.numpy())
    )
    assert json.loads((tmp_path / "c100" / "export.json").read_text())["dataset"].startswith("cifar100-pickle:")


def test_released_cifar100c_files_feed_the_condition(tmp_path):
    from kdbench.evaluation.conditions import CONDITIONS

    folder = tmp_path / "CIFAR-100-C"
    folder.mkdir()
    labels = np.arange(50000) % 100
    np.save(folder / "labels.npy", labels.astype(np.uint8))
    arr = np.lib.format.open_memmap(folder / "fog.npy", mode="w+", dtype=np.uint8, shape=(50000, 32, 32, 3))
    arr[4 * 10000 + 77] = 99
    arr.flush()
    del arr
    cls = CONDITIONS.get("corruptions")
    cond = cls.build(cls.Params(names=["fog"], source="files", root=str(tmp_path)), seed=0)[0]
    cond.dataset = "cifar100"
    out = cond.perturb(torch.zeros(1, 3, 32, 32), torch.tensor([77]), torch.tensor([77]), 5)
    assert torch.allclose(out, torch.full((1, 3, 32, 32), 99 / 255))
    with pytest.raises(ValueError, match="CIFAR-100-C labels disagree .*CIFAR-100 test order"):
        cond.perturb(torch.zeros(1, 3, 32, 32), torch.tensor([3]), torch.tensor([77]), 5)
    assert cifar10c.load_labels(tmp_path, release=cifar10c.RELEASES["cifar100"]).max() == 99
    with pytest.raises(DataError, match="labels outside 0..9"):  # the same file is not CIFAR-10-C's
        (tmp_path / "CIFAR-10-C").symlink_to(folder)
        cifar10c.load_labels(tmp_path)
    with pytest.raises(DataError, match="zenodo.org/records/3555552"):
        cifar10c.load_corruption(tmp_path / "empty", "fog", cifar10c.RELEASES["cifar100"])


def test_a_cifar100_suite_trains_and_scores_100_class_models(tmp_path, capsys):
    writers.write_cifar_pickles(tmp_path / "data", hundred(), release=cifar.CIFAR100)
    suite = tmp_path / "c100.yaml"
    suite.write_text("""
name: c100
dataset: {name: cifar100}
train: {epochs: 1, batch_size: 100, lr: 0.05, augment: false}
teachers:
  t: {arch: cnn_tiny, normalize: cifar100, evaluate: clean}
students:
  kd: {arch: cnn_tiny, method: kd, teachers: t, normalize: cifar100, seeds: [0]}
  at: {arch: cnn_tiny, method: at, teachers: t, normalize: cifar100, seeds: [0]}
  base: {arch: cnn_tiny, method: baseline, normalize: cifar100, seeds: [0]}
evaluate: {clean: {}, gaussian_noise: {sigmas: [0.1]}, saliency: 0}
""")
    code = main(
        ["run", str(suite), "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    run = tmp_path / "out" / "c100" / "latest"
    weights = next(p for p in (tmp_path / "out").rglob("model.pt"))
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert state["fc.weight"].shape[0] == 100
    metrics = (run / "metrics.csv").read_text()
    assert "gaussian_noise" in metrics and "kd" in metrics and ",at," in metrics
