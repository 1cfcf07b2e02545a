"""torchvision's CIFAR pickles, read safely: an unpickler that refuses every global but numpy's
arrays, so a doctored file under a data root cannot run code."""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kdbench.data.errors import DataError
from kdbench.data.tensors import TensorData
from kdbench.util.hashing import file_sha256
from kdbench.util.lazy import lazy

if TYPE_CHECKING:
    from kdbench.data.cifar import Release

torch = lazy("torch")


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR batches hold numpy arrays, lists and strings; refusing every other global means a
    doctored file under a data root cannot run code when it is read."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at pickle protocol 2
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (not part of a CIFAR batch)")


def _unpickle(raw: bytes, path: Path) -> dict:
    try:
        # latin1: the released batches are Python 2 pickles, and their numpy arrays need it.
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as exc:
        raise DataError(f"{path}: cannot read as a CIFAR pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    # Python 2 files give str keys under latin1; files written by Python 3 may use bytes keys.
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_meta(folder: Path, release: Release) -> list[str]:
    path = folder / release.meta_file
    meta = _unpickle(path.read_bytes(), path)
    names = meta.get(release.class_key)
    if not isinstance(names, (list, tuple)) or not names:
        raise DataError(f"{path}: expected a '{release.class_key}' list of class names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def _read_batch(path: Path, raw: bytes, num_classes: int, release: Release) -> tuple[np.ndarray, np.ndarray]:
    entry = _unpickle(raw, path)
    data, labels = entry.get("data"), entry.get(release.label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array (N, 3072) of 32x32 RGB images, got {got}")
    try:
        labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: '{release.label_key}' must be a list of integer class ids") from None
    if labels.shape != (data.shape[0],):
        raise DataError(
            f"{path}: '{release.label_key}' must hold one label per image ({data.shape[0]}), got shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{path}: labels must lie in 0..{num_classes - 1} ({release.meta_file} names {num_classes} classes)"
        )
    return data, labels


def load_pickles(folder: Path, splits, release: Release):
    """Read the batches of the `splits` asked from a cifar-10-batches-py (or cifar-100-python) folder."""
    folder = Path(folder)
    needed = [release.meta_file] + [name for s in splits for name in release.batches[s]]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{folder}: incomplete {release.pickle_dir} folder, missing {', '.join(missing)} "
            f"(expected {release.pickle_listing}, as unpacked from {release.archive})"
        )
    classes = _read_meta(folder, release)
    digests: dict[str, str] = {}
    out = {}
    for split in splits:
        arrays, labels = [], []
        for name in release.batches[split]:
            path = folder / name
            raw = path.read_bytes()
            digests[name] = hashlib.sha256(raw).hexdigest()
            data, lab = _read_batch(path, raw, len(classes), release)
            arrays.append(data)
            labels.append(lab)
        images = torch.from_numpy(np.concatenate(arrays).reshape(-1, 3, 32, 32))
        n = images.shape[0]
        out[split] = TensorData(images, torch.from_numpy(np.concatenate(labels)), torch.arange(n, dtype=torch.int64))
    # The identity covers every file present, read or not, so it names the dataset, not the split.
    for name in release.pickle_files:
        if name not in digests and (folder / name).is_file():
            digests[name] = file_sha256(folder / name)
    listing = "".join(f"{name}\t{digests[name]}\n" for name in release.pickle_files if name in digests)
    return out, classes, f"{release.name}-pickle:" + hashlib.sha256(listing.encode()).hexdigest()[:16]
