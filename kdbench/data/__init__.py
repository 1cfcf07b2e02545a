"""Datasets as in-memory tensors: `load_dataset("cifar10" | "cifar100" | "synthetic", root, ...) -> Splits`.

The data root comes from `resolve_root` (--data-root, then $KDBENCH_DATA_ROOT, then the user
cache). Loaders are found by name in `DATASETS`; each takes the root, the splits wanted and its
own keyword parameters, and returns (dict split -> TensorData, classes, identity).
"""

from __future__ import annotations

import inspect
import os

from kdbench.data.errors import DataError
from kdbench.data.paths import cache_dir, decoded_cache_dir, resolve_root
from kdbench.data.subsets import stratified_subset
from kdbench.data.tensors import Splits, TensorData
from kdbench.registry import Registry, did_you_mean
from kdbench.util.names import SPLITS

__all__ = [
    "DATASETS",
    "DataError",
    "register_dataset",
    "Splits",
    "TensorData",
    "cache_dir",
    "decoded_cache_dir",
    "load_dataset",
    "load_split",
    "resolve_root",
    "stratified_subset",
]


DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register
# A dataset is a loader `(root, splits, *, download, **params) -> (dict split -> TensorData, classes,
# identity)` that registers itself; its optional `check_params(params, train_subset, test_subset)`
# says what it refuses whatever its files hold, when a suite is validated.
DATASETS.declare_from_sources(__name__, __path__, "register_dataset", first=["cifar", "synthetic"])


def check_params(name: str, params: dict, train_subset=None, test_subset=None) -> None:
    loader = DATASETS.get(name)
    check = getattr(loader, "check_params", None)
    if check is not None:
        check(params, train_subset, test_subset)
        return
    allowed = dataset_params(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise DataError(f"{name} dataset: unknown parameter(s) {unknown}; expected: {', '.join(allowed) or 'none'}")


def train_size(name: str, params: dict, train_subset: int | None = None) -> int | None:
    """How many training images dataset `name` gives with these parameters, when known without
    reading it (a loader's optional `train_size(params)`); None otherwise."""
    if train_subset is not None:
        return train_subset
    size = getattr(DATASETS.get(name), "train_size", None)
    return int(size(params)) if callable(size) else None


def num_classes(name: str, params: dict) -> int | None:
    """How many classes dataset `name` has with these parameters, when known without reading it
    (a loader's optional `num_classes(params)`); None otherwise."""
    count = getattr(DATASETS.get(name), "num_classes", None)
    return int(count(params)) if callable(count) else None


def image_size(name: str, params: dict) -> int | None:
    """The side of dataset `name`'s square images, when known without reading it (a loader's
    optional `image_size(params)`); None otherwise."""
    size = getattr(DATASETS.get(name), "image_size", None)
    return int(size(params)) if callable(size) else None


def dataset_params(name: str) -> list[str]:
    """The keyword parameters dataset `name` takes (beyond root, splits and download)."""
    sig = inspect.signature(DATASETS.get(name))
    return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY and p.name != "download"]


def _load(name: str, root, splits: tuple[str, ...], download: bool, params: dict):
    loader = DATASETS.get(name)
    allowed = dataset_params(name)
    for key in params:
        if key not in allowed:
            raise DataError(
                f"dataset '{name}' has no parameter '{key}'{did_you_mean(key, allowed)}; "
                f"it takes: {', '.join(allowed) or 'none'}"
            )
    return loader(resolve_root(root), splits, download=download, **params)


def _subset(data: TensorData, split: str, n: int | None, seed: int) -> tuple[TensorData, str]:
    """`data` cut to a stratified `n`, and the identity suffix saying so ('' when nothing was cut)."""
    if n is None:
        return data, ""
    try:
        positions = stratified_subset(data.labels, n, seed)
    except ValueError as exc:
        raise DataError(f"{split}_subset: {exc}") from None
    if len(positions) == len(data):
        return data, ""
    return data.subset(positions), f";{split}_subset={int(n)}@{int(seed)}"


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int = 0,
    **params,
) -> Splits:
    """Both splits of dataset `name`. `root` as for `resolve_root` (ignored by `synthetic`);
    `download` lets cifar10 and cifar100 fetch torchvision's archive when nothing is found; `*_subset` keep a
    class-stratified subset of that size (seeded by `subset_seed`, indices kept canonical);
    `params` go to the dataset (cifar10, cifar100: format; synthetic: n_train, n_test, seed, num_classes, noise).
    The identity records any subset that removed examples."""
    data, classes, identity = _load(name, root, SPLITS, download, params)
    train, train_tag = _subset(data["train"], "train", train_subset, subset_seed)
    test, test_tag = _subset(data["test"], "test", test_subset, subset_seed)
    return Splits(train, test, classes, identity + train_tag + test_tag)


def load_split(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "test",
    *,
    download: bool = False,
    subset: int | None = None,
    subset_seed: int = 0,
    **params,
) -> tuple[TensorData, list[str], str]:
    """(data, classes, identity) for one split, decoding only that split's images.
    The identity is the whole dataset's, as `load_dataset` gives it, plus any subset taken: so the
    other split's files are hashed (not decoded) when no cached fingerprint of them exists yet."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    data, classes, identity = _load(name, root, (split,), download, params)
    part, tag = _subset(data[split], split, subset, subset_seed)
    return part, classes, identity + tag
