"""kdbench.data: both CIFAR layouts, the decode cache, identities, subsets and the synthetic set.

Every fixture is made here in tmp_path; nothing touches the network or /work/shared.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import kdbench.data as data
from kdbench.data import (
    DataError,
    Splits,
    TensorData,
    imagefolder,
    load_dataset,
    load_split,
    resolve_root,
    stratified_subset,
    writers,
)
from kdbench.data.synthetic import make_synthetic, write_synthetic_cifar_pickles, write_synthetic_imagefolder
from kdbench.registry import UnknownName


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KDBENCH_DATA_ROOT", raising=False)


def small(seed: int = 1, sort_by_label: bool = False) -> Splits:
    s = make_synthetic(n_train=30, n_test=12, num_classes=3, seed=seed)
    if sort_by_label:
        # ImageFolder order is by class; data already in that order reads back identically from both layouts.
        s = Splits(
            *(d.subset(torch.sort(d.labels, stable=True).indices) for d in (s.train, s.test)), s.classes, s.identity
        )
    return s


def same(a: TensorData, b: TensorData) -> bool:
    return torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and torch.equal(a.indices, b.indices)


def png_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


# ---------------------------------------------------------------- both layouts
def test_pickles_and_imagefolder_of_the_same_images_load_identically(tmp_path):
    src = small(sort_by_label=True)
    writers.write_cifar_pickles(tmp_path / "pk", src)
    writers.write_imagefolder(tmp_path / "if", src)

    from_pickles = load_dataset("cifar10", tmp_path / "pk")
    from_folders = load_dataset("cifar10", tmp_path / "if")

    assert from_pickles.identity.startswith("cifar10-pickle:")
    assert from_folders.identity.startswith("cifar10-imagefolder:")
    for split in ("train", "test"):
        a, b, want = getattr(from_pickles, split), getattr(from_folders, split), getattr(src, split)
        assert same(a, b)
        assert torch.equal(a.images, want.images) and torch.equal(a.labels, want.labels)
        assert torch.equal(a.indices, torch.arange(len(want)))
        assert a.images.dtype == torch.uint8 and a.images.shape[1:] == (3, 32, 32)
        assert a.labels.dtype == torch.int64 and a.indices.dtype == torch.int64
    assert from_pickles.classes == from_folders.classes == ["class0", "class1", "class2"]


def test_imagefolder_order_and_labels_match_torchvision(tmp_path):
    from torchvision.datasets import ImageFolder

    src = small(seed=4)  # not sorted by class: the two layouts order it differently
    root = tmp_path / "if"
    writers.write_imagefolder(root, src)
    writers.write_cifar_pickles(tmp_path / "pk", src)
    # Things torchvision also handles: a nested folder, an upper-case extension, a non-image file.
    nested = root / "train" / "class1" / "more"
    nested.mkdir()
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(nested / "extra.PNG")
    (root / "train" / "class1" / "notes.txt").write_text("not an image")

    ours = load_dataset("cifar10", root)
    for split in ("train", "test"):
        tv = ImageFolder(str(root / split))
        got = getattr(ours, split)
        assert got.labels.tolist() == [label for _, label in tv.samples]
        for pos in range(len(tv)):
            assert np.array_equal(np.asarray(tv[pos][0]).transpose(2, 0, 1), got.images[pos].numpy()), pos
        assert ours.classes == tv.classes

    # Without the extra file, ImageFolder order is the pickle order stably sorted by label.
    (nested / "extra.PNG").unlink()
    pickles = load_dataset("cifar10", tmp_path / "pk")
    folders = load_dataset("cifar10", root)
    order = torch.sort(pickles.train.labels, stable=True).indices
    assert torch.equal(folders.train.images, pickles.train.images[order])
    assert torch.equal(folders.train.labels, pickles.train.labels[order])


def test_autodetects_the_layout_and_format_param_overrides(tmp_path):
    src = small()
    folder = writers.write_cifar_pickles(tmp_path / "both", src)
    writers.write_imagefolder(tmp_path / "both", src)

    assert load_dataset("cifar10", tmp_path / "both").identity.startswith("cifar10-pickle:")  # pickles win
    assert load_dataset("cifar10", folder).identity.startswith("cifar10-pickle:")  # root is the batches folder
    as_folders = load_dataset("cifar10", tmp_path / "both", format="imagefolder")
    assert as_folders.identity.startswith("cifar10-imagefolder:")
    with pytest.raises(DataError, match="format must be one of"):
        load_dataset("cifar10", tmp_path / "both", format="hdf5")


# ---------------------------------------------------------------- errors
def test_missing_data_names_the_root_the_formats_and_where_to_put_them(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", root)
    msg = str(err.value)
    assert str(root) in msg
    for needle in (
        "cifar-10-batches-py",
        "data_batch_1",
        str(root / "train"),
        str(root / "test"),
        "--data-root",
        "KDBENCH_DATA_ROOT",
    ):
        assert needle in msg, needle

    with pytest.raises(DataError, match="does not exist"):
        load_dataset("cifar10", tmp_path / "nowhere")


def test_failed_download_says_so_and_how_to_place_the_files(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path / "dl", download=True)
    msg = str(err.value)
    assert "could not download" in msg and str(tmp_path / "dl") in msg and "no network" in msg
    assert "cifar-10-batches-py" in msg


def test_wrong_image_size_names_the_file(tmp_path):
    writers.write_imagefolder(tmp_path, small())
    bad = tmp_path / "train" / "class1" / "0000.png"
    Image.fromarray(np.zeros((32, 31, 3), np.uint8)).save(bad)
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", tmp_path)
    assert str(bad) in str(err.value) and "31x32" in str(err.value) and "32x32" in str(err.value)


def test_alpha_and_undecodable_images_name_the_file(tmp_path):
    writers.write_imagefolder(tmp_path, small())
    rgba = tmp_path / "test" / "class0" / "0000.png"
    Image.fromarray(np.zeros((32, 32, 4), np.uint8)).save(rgba)
    with pytest.raises(DataError, match="mode is RGBA") as err:
        load_split("cifar10", tmp_path, "test")
    assert str(rgba) in str(err.value)

    junk = tmp_path / "test" / "class0" / "0000.png"
    junk.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="cannot decode") as err:
        load_split("cifar10", tmp_path, "test")
    assert str(junk) in str(err.value)


def test_train_and_test_must_have_the_same_class_folders(tmp_path):
    writers.write_imagefolder(tmp_path, small())
    shutil.rmtree(tmp_path / "test" / "class2")
    with pytest.raises(DataError, match=r"only in train/: class2"):
        load_dataset("cifar10", tmp_path)


def test_empty_class_folder_is_an_error(tmp_path):
    writers.write_imagefolder(tmp_path, small())
    for f in (tmp_path / "train" / "class1").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="holds no images") as err:
        load_dataset("cifar10", tmp_path)
    assert str(tmp_path / "train" / "class1") in str(err.value)


def test_incomplete_pickles_name_the_missing_batch_but_test_alone_still_loads(tmp_path):
    folder = writers.write_cifar_pickles(tmp_path, small())
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="missing data_batch_3"):
        load_dataset("cifar10", tmp_path)
    test, classes, _ = load_split("cifar10", tmp_path, "test")
    assert len(test) == 12 and classes == ["class0", "class1", "class2"]


def test_malformed_batch_names_the_file(tmp_path):
    folder = writers.write_cifar_pickles(tmp_path, small())
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": np.zeros((4, 100), np.uint8), "labels": [0, 1, 2, 0]}, fh)
    with pytest.raises(DataError, match=r"\(N, 3072\)") as err:
        load_split("cifar10", tmp_path, "test")
    assert str(folder / "test_batch") in str(err.value)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_pickles_cannot_run_code(tmp_path):
    folder = writers.write_cifar_pickles(tmp_path, small())
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": _Evil(), "labels": []}, fh)
    with pytest.raises(DataError, match="refusing to load"):
        load_split("cifar10", tmp_path, "test")


def test_unknown_dataset_and_parameter_are_named():
    with pytest.raises(UnknownName, match="did you mean 'cifar10'"):
        load_dataset("cifar1O", None)
    with pytest.raises(DataError, match="no parameter 'n_trian'.*did you mean 'n_train'"):
        load_dataset("synthetic", None, n_trian=10)
    with pytest.raises(DataError, match="split must be one of"):
        load_split("synthetic", None, "val")


# ---------------------------------------------------------------- decode cache and split reads
def test_decoded_imagefolder_is_cached_and_reused(tmp_path, monkeypatch):
    writers.write_imagefolder(tmp_path / "if", small())
    real = imagefolder.decode_files
    first = load_dataset("cifar10", tmp_path / "if")
    cached = sorted(p.name for p in (tmp_path / "cache" / "decoded").iterdir())
    assert len([n for n in cached if n.endswith(".npy")]) == 2, cached
    assert not [n for n in cached if n.endswith(".part")], cached

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(imagefolder, "decode_files", no_decoding)
    second = load_dataset("cifar10", tmp_path / "if")
    assert same(first.train, second.train) and same(first.test, second.test)
    assert first.identity == second.identity

    # A changed file changes the listing: that split is decoded again, and only that split.
    calls = []
    monkeypatch.setattr(
        imagefolder,
        "decode_files",
        lambda paths, decode=True, *size: calls.append(len(paths)) or real(paths, decode, *size),
    )
    changed = tmp_path / "if" / "test" / "class0" / "0000.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(changed)
    third = load_dataset("cifar10", tmp_path / "if")
    assert calls == [12]
    assert torch.equal(third.test.images[0], torch.full((3, 32, 32), 200, dtype=torch.uint8))


def test_damaged_cache_is_ignored_and_rewritten(tmp_path):
    writers.write_imagefolder(tmp_path / "if", small())
    first = load_dataset("cifar10", tmp_path / "if")
    for npy in (tmp_path / "cache" / "decoded").glob("*.npy"):
        npy.write_bytes(b"garbage")
    again = load_dataset("cifar10", tmp_path / "if")
    assert same(first.train, again.train) and first.identity == again.identity


def test_load_split_decodes_only_that_split_and_keeps_the_dataset_identity(tmp_path, monkeypatch):
    writers.write_imagefolder(tmp_path / "if", small())
    seen = []
    real = imagefolder.decode_files
    monkeypatch.setattr(
        imagefolder,
        "decode_files",
        lambda paths, decode=True, *size: seen.append((paths[0], decode)) or real(paths, decode, *size),
    )

    test, classes, identity = load_split("cifar10", tmp_path / "if", "test")
    decoded = [p for p, dec in seen if dec]
    assert len(decoded) == 1 and f"{os.sep}test{os.sep}" in decoded[0]
    assert len(test) == 12 and classes == ["class0", "class1", "class2"]
    assert identity == load_dataset("cifar10", tmp_path / "if").identity

    writers.write_cifar_pickles(tmp_path / "pk", small())
    assert load_split("cifar10", tmp_path / "pk", "test")[2] == load_dataset("cifar10", tmp_path / "pk").identity


def test_parallel_decode_matches_serial(tmp_path, monkeypatch):
    writers.write_imagefolder(tmp_path / "if", make_synthetic(n_train=40, n_test=10, num_classes=2))
    listing = imagefolder.list_split(tmp_path / "if" / "train")
    serial, serial_digests = imagefolder.decode_files(listing.paths)
    monkeypatch.setattr(imagefolder, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(imagefolder, "_workers", lambda: 2)
    parallel, parallel_digests = imagefolder.decode_files(listing.paths)
    assert torch.equal(serial, parallel) and serial_digests == parallel_digests


def test_bad_file_found_by_a_worker_process_names_the_file(tmp_path, monkeypatch):
    writers.write_imagefolder(tmp_path / "if", make_synthetic(n_train=40, n_test=10, num_classes=2))
    bad = tmp_path / "if" / "train" / "class1" / "0003.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bad)
    monkeypatch.setattr(imagefolder, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(imagefolder, "_workers", lambda: 2)
    with pytest.raises(DataError, match="16x16") as err:
        load_dataset("cifar10", tmp_path / "if")
    assert str(bad) in str(err.value)


def test_unwritable_cache_warns_and_still_loads(tmp_path, monkeypatch):
    writers.write_imagefolder(tmp_path / "if", small())
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("KDBENCH_CACHE_DIR", str(tmp_path / "a_file" / "cache"))  # cannot be created
    with pytest.warns(UserWarning, match="could not cache decoded"):
        got = load_dataset("cifar10", tmp_path / "if")
    assert len(got.train) == 30


# ---------------------------------------------------------------- identity
def test_identity_follows_content_not_location(tmp_path):
    src = small()
    for fmt, write in (("pickle", writers.write_cifar_pickles), ("imagefolder", writers.write_imagefolder)):
        a, b = tmp_path / fmt / "a", tmp_path / fmt / "b"
        write(a, src)
        shutil.copytree(a, b)  # new path, new mtimes, same bytes
        ident_a = load_dataset("cifar10", a).identity
        assert load_dataset("cifar10", b).identity == ident_a, fmt
        assert str(tmp_path) not in ident_a

        # One pixel changed in one test image: another identity.
        changed = src.test.images.clone()
        changed[0, 0, 0, 0] ^= 1
        altered = Splits(src.train, TensorData(changed, src.test.labels, src.test.indices), src.classes, "")
        c = tmp_path / fmt / "c"
        write(c, altered)
        assert load_dataset("cifar10", c).identity != ident_a, fmt


def test_identity_records_subsets_that_remove_examples():
    full = load_dataset("synthetic", None, n_train=100, n_test=50)
    part = load_dataset("synthetic", None, n_train=100, n_test=50, train_subset=20)
    assert part.identity.startswith(full.identity) and part.identity != full.identity
    assert (
        load_dataset("synthetic", None, n_train=100, n_test=50, train_subset=20, subset_seed=1).identity
        != part.identity
    )
    # Asking for at least everything removes nothing.
    assert load_dataset("synthetic", None, n_train=100, n_test=50, test_subset=50).identity == full.identity


# ---------------------------------------------------------------- subsets
def test_stratified_subset_balanced_classes():
    labels = torch.arange(1000) % 10
    pos = stratified_subset(labels, 55, seed=0)
    assert pos.dtype == torch.int64 and len(pos) == 55
    assert torch.equal(pos, torch.sort(pos).values) and len(set(pos.tolist())) == 55
    counts = Counter(labels[pos].tolist())
    assert sorted(counts.values()) == [5] * 5 + [6] * 5
    # Leftovers go to the smallest labels when remainders tie.
    assert [counts[c] for c in range(10)] == [6] * 5 + [5] * 5


def test_stratified_subset_unbalanced_classes_are_proportional_and_never_overdrawn():
    labels = torch.tensor([0] * 600 + [1] * 300 + [2] * 100)
    labels = labels[torch.randperm(1000, generator=torch.Generator().manual_seed(3))]
    assert Counter(labels[stratified_subset(labels, 100, 0)].tolist()) == {0: 60, 1: 30, 2: 10}
    tiny = torch.tensor([0] * 99 + [1])
    for n in range(1, 100):
        got = Counter(tiny[stratified_subset(tiny, n, 0)].tolist())
        assert got[1] <= 1 and sum(got.values()) == n


def test_stratified_subset_is_seeded_and_handles_edges():
    labels = torch.arange(200) % 4
    a, b = stratified_subset(labels, 40, seed=7), stratified_subset(labels, 40, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, stratified_subset(labels, 40, seed=8))
    assert torch.equal(stratified_subset(labels, 200, 0), torch.arange(200))
    assert torch.equal(stratified_subset(labels, 10_000, 0), torch.arange(200))
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError):
            stratified_subset(labels, bad, 0)


def test_load_dataset_subsets_keep_canonical_indices():
    full = load_dataset("synthetic", None, n_train=200, n_test=100)
    part = load_dataset("synthetic", None, n_train=200, n_test=100, train_subset=50, test_subset=20, subset_seed=3)
    assert len(part.train) == 50 and len(part.test) == 20
    assert torch.equal(part.train.images, full.train.images[part.train.indices])
    assert torch.equal(part.test.labels, full.test.labels[part.test.indices])
    assert sorted(Counter(part.train.labels.tolist()).values()) == [5] * 10
    with pytest.raises(DataError, match="train_subset"):
        load_dataset("synthetic", None, train_subset=0)

    test, _, _ = load_split("synthetic", None, "test", n_train=200, n_test=100, subset=20, subset_seed=3)
    assert same(test, part.test)


def test_tensor_data_checks_and_subsets():
    d = TensorData(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.arange(4), torch.arange(10, 14))
    s = d.subset([3, 1])
    assert len(s) == 2 and s.indices.tolist() == [13, 11] and s.labels.tolist() == [3, 1]
    with pytest.raises(ValueError, match="uint8"):
        TensorData(torch.zeros(4, 3, 32, 32), torch.arange(4), torch.arange(4))
    with pytest.raises(ValueError, match="labels"):
        TensorData(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.arange(3), torch.arange(4))


# ---------------------------------------------------------------- synthetic
def test_synthetic_is_deterministic_by_seed_and_differs_across_seeds():
    a, b, c = make_synthetic(seed=0), make_synthetic(seed=0), make_synthetic(seed=1)
    assert same(a.train, b.train) and same(a.test, b.test) and a.identity == b.identity
    assert not torch.equal(a.train.images, c.train.images) and a.identity != c.identity
    assert a.classes == [f"class{i}" for i in range(10)]
    assert len(a.train) == 2000 and len(a.test) == 500
    assert a.train.images.dtype == torch.uint8 and a.train.images.shape[1:] == (3, 32, 32)
    assert sorted(Counter(a.train.labels.tolist()).values()) == [200] * 10
    # The test split depends on its own parameters only.
    assert torch.equal(make_synthetic(n_train=100).test.images, a.test.images)
    assert not torch.equal(make_synthetic(noise=0.3).test.images, a.test.images)
    assert make_synthetic(noise=0.3).identity != a.identity


def test_synthetic_rejects_bad_params():
    for params in ({"n_train": 0}, {"num_classes": 1}, {"noise": -0.1}, {"seed": "x"}):
        with pytest.raises(DataError):
            make_synthetic(**params)


def test_synthetic_is_learnable_but_not_trivially_robust():
    torch.manual_seed(0)
    s = make_synthetic(n_train=1000, n_test=300)
    x, y = s.train.images.float() / 255, s.train.labels
    xt, yt = s.test.images.float() / 255, s.test.labels
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 8 * 8, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(2):
        for batch in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
    net.eval()
    clean = (net(xt).argmax(1) == yt).float().mean().item()
    assert clean > 0.6, clean

    xa = xt.clone().requires_grad_(True)  # FGSM at 4/255
    torch.nn.functional.cross_entropy(net(xa), yt).backward()
    adv = (xt + 4 / 255 * xa.grad.sign()).clamp(0, 1)
    robust = (net(adv).argmax(1) == yt).float().mean().item()
    assert robust < clean - 0.1, (clean, robust)


def test_synthetic_writers_round_trip_through_both_layouts(tmp_path):
    params = dict(n_train=20, n_test=10, num_classes=2, seed=5)
    write_synthetic_cifar_pickles(tmp_path / "pk", **params)
    write_synthetic_imagefolder(tmp_path / "if", **params)
    src = make_synthetic(**params)
    pk = load_dataset("cifar10", tmp_path / "pk")
    fo = load_dataset("cifar10", tmp_path / "if")
    assert same(pk.train, src.train) and same(pk.test, src.test)
    order = torch.sort(src.test.labels, stable=True).indices
    assert torch.equal(fo.test.images, src.test.images[order])


# ---------------------------------------------------------------- roots
def test_resolve_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_DATA_ROOT", str(tmp_path / "env"))
    assert resolve_root(str(tmp_path / "cli")) == tmp_path / "cli"
    assert resolve_root(None) == tmp_path / "env"
    monkeypatch.delenv("KDBENCH_DATA_ROOT")
    assert resolve_root(None) == tmp_path / "cache" / "data"  # $KDBENCH_CACHE_DIR from the fixture
    monkeypatch.delenv("KDBENCH_CACHE_DIR")
    import platformdirs

    assert resolve_root(None) == Path(platformdirs.user_cache_dir("kdbench")) / "data"


def test_env_root_is_used_by_load_dataset(tmp_path, monkeypatch):
    writers.write_cifar_pickles(tmp_path / "env", small())
    monkeypatch.setenv("KDBENCH_DATA_ROOT", str(tmp_path / "env"))
    assert len(load_dataset("cifar10", None).train) == 30
    assert "cifar10" in data.DATASETS and "synthetic" in data.DATASETS
