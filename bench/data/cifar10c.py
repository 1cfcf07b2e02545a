"""The released CIFAR-10-C files (Hendrycks & Dietterich, Zenodo record 2535967).

    <root>/CIFAR-10-C/<corruption>.npy   uint8 (50000, 32, 32, 3): severity s, test image i at
                                         row (s - 1) * 10000 + i, in torchvision's test order
    <root>/CIFAR-10-C/labels.npy         (50000,) the test labels, repeated for each severity

Reading checks shapes, dtypes and labels and memory-maps the images. When files are missing,
`ensure` downloads the archive from Zenodo (the record robustbench uses) with short network
time-outs, and says plainly what to do when that is not possible.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np

from .errors import DataError

FOLDER = "CIFAR-10-C"
N_TEST = 10000
N_SEVERITIES = 5
ZENODO_RECORD = "2535967"  # robustbench.data.ZENODO_CORRUPTIONS_LINKS[cifar_10]
ARCHIVE = "CIFAR-10-C.tar"
API = f"https://zenodo.org/api/records/{ZENODO_RECORD}"
PAGE = f"https://zenodo.org/records/{ZENODO_RECORD}"
CONNECT_TIMEOUT = 5.0  # seconds: an offline machine fails fast instead of hanging
READ_TIMEOUT = 30.0


def folder(root) -> Path:
    return Path(root).expanduser() / FOLDER


def rows(severity: int, indices) -> np.ndarray:
    """Rows of the released files for test images `indices` at `severity`."""
    idx = np.asarray(indices, dtype=np.int64)
    if not 1 <= int(severity) <= N_SEVERITIES:
        raise DataError(f"CIFAR-10-C severities are 1..5, got {severity}")
    if idx.size and (idx.min() < 0 or idx.max() >= N_TEST):
        raise DataError(f"CIFAR-10-C holds test images 0..{N_TEST - 1}; asked for index {int(idx.max())}")
    return (int(severity) - 1) * N_TEST + idx


def _open(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(missing_message(path.parent.parent, [path.stem]))
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable {what} ({exc}); delete it and download CIFAR-10-C again") from None


def load_corruption(root, name: str) -> np.ndarray:
    """`name`'s images, memory-mapped, checked to be uint8 (50000, 32, 32, 3)."""
    path = folder(root) / f"{name}.npy"
    arr = _open(path, "image file")
    want = (N_SEVERITIES * N_TEST, 32, 32, 3)
    if arr.dtype != np.uint8 or arr.shape != want:
        raise DataError(f"{path}: expected uint8 {want}, found {arr.dtype} {arr.shape} (truncated download?)")
    return arr


def load_labels(root, test_labels=None) -> np.ndarray:
    """labels.npy, checked: (50000,), integers in 0..9, the same 10000 labels for each severity,
    and equal to `test_labels` (the clean test split's, in order) when given."""
    path = folder(root) / "labels.npy"
    arr = np.asarray(_open(path, "label file"))
    if arr.shape != (N_SEVERITIES * N_TEST,) or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path}: expected integer labels of shape ({N_SEVERITIES * N_TEST},), found {arr.dtype} {arr.shape}")
    if arr.min() < 0 or arr.max() > 9:
        raise DataError(f"{path}: labels outside 0..9")
    per = arr.reshape(N_SEVERITIES, N_TEST)
    if not (per == per[0]).all():
        raise DataError(f"{path}: the five severities do not carry the same labels")
    if test_labels is not None:
        want = np.asarray(test_labels).astype(np.int64).reshape(-1)
        if want.shape != (N_TEST,) or not np.array_equal(per[0].astype(np.int64), want):
            raise DataError(f"{path}: labels differ from the CIFAR-10 test split's (rows follow torchvision's test order)")
    return arr


def missing_files(root, names) -> list[str]:
    """Those of `names` (plus labels) whose file is missing."""
    f = folder(root)
    return [n for n in [*names, "labels"] if not (f / f"{n}.npy").is_file()]


def missing_message(root, names) -> str:
    return (f"CIFAR-10-C files missing under {folder(root)}: {', '.join(f'{n}.npy' for n in names)}. "
            f"Download {ARCHIVE} (2.9 GB) from {PAGE} and extract it into {Path(root).expanduser()}, "
            "or use `source: generate` to make the corruptions on the fly")


def ensure(root, names, *, download: bool = True) -> Path:
    """The CIFAR-10-C folder with `names` and labels.npy, downloading the archive when allowed."""
    missing = missing_files(root, names)
    if not missing:
        return folder(root)
    if not download:
        raise DataError(missing_message(root, missing))
    fetch_archive(root, missing)
    still = missing_files(root, names)
    if still:
        raise DataError(f"{ARCHIVE} from Zenodo lacks {', '.join(f'{n}.npy' for n in still)}")
    return folder(root)


def fetch_archive(root, missing=("labels",)) -> None:
    """Download and unpack Zenodo's CIFAR-10-C.tar (2.9 GB) into `root`, checking its md5 as
    robustbench's downloader does, but with time-outs: offline, it fails within seconds."""
    try:
        import requests
    except ImportError:  # pragma: no cover - requests comes with robustbench
        raise DataError("downloading CIFAR-10-C needs the 'requests' package. " + missing_message(root, missing)) from None
    root = Path(root).expanduser()
    timeout = (CONNECT_TIMEOUT, READ_TIMEOUT)
    try:
        record = requests.get(API, timeout=timeout)
        record.raise_for_status()
        entry = next(f for f in record.json()["files"] if f["key"] == ARCHIVE)
    except (requests.RequestException, ValueError, KeyError, StopIteration) as exc:
        raise DataError(f"cannot reach Zenodo to download CIFAR-10-C ({type(exc).__name__}: {exc}). "
                        + missing_message(root, missing)) from None
    url = entry["links"]["self"]
    md5 = entry.get("checksum", "").split(":")[-1]
    root.mkdir(parents=True, exist_ok=True)
    part = root / (ARCHIVE + ".part")
    digest = hashlib.md5()
    print(f"kdbench: downloading {url} ({entry.get('size', 0) / 1e9:.1f} GB) to {root}", file=sys.stderr, flush=True)
    try:
        with requests.get(url, stream=True, timeout=timeout) as r, open(part, "wb") as fh:
            r.raise_for_status()
            for chunk in r.iter_content(chunk_size=1 << 20):
                fh.write(chunk)
                digest.update(chunk)
    except (requests.RequestException, OSError) as exc:
        part.unlink(missing_ok=True)
        raise DataError(f"downloading {url} failed ({type(exc).__name__}: {exc}). " + missing_message(root, missing)) from None
    if md5 and digest.hexdigest() != md5:
        part.unlink(missing_ok=True)
        raise DataError(f"{ARCHIVE}: md5 {digest.hexdigest()} differs from Zenodo's {md5}; try again")
    tmp = root / f".{FOLDER}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(part) as tar:
        tar.extractall(tmp, filter="data")
    dest = folder(root)
    dest.mkdir(parents=True, exist_ok=True)
    for f in (tmp / FOLDER).glob("*.npy"):
        f.replace(dest / f.name)
    shutil.rmtree(tmp, ignore_errors=True)
    part.unlink(missing_ok=True)
