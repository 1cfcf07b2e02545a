"""The released CIFAR-10-C and CIFAR-100-C files (Hendrycks & Dietterich, Zenodo records 2535967
and 3555552), for the datasets `cifar10` and `cifar100`.

    <root>/CIFAR-10-C/<corruption>.npy   uint8 (50000, 32, 32, 3): severity s, test image i at
                                         row (s - 1) * 10000 + i, in torchvision's test order
    <root>/CIFAR-10-C/labels.npy         (50000,) the test labels, repeated for each severity
    <root>/CIFAR-100-C/...               the same layout, fine labels 0..99

Reading checks shapes, dtypes and labels and memory-maps the images. When files are missing,
`ensure` downloads the archive from Zenodo (the record robustbench uses) with short network
time-outs, and says plainly what to do when that is not possible.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdbench.data.errors import DataError

N_TEST = 10000
N_SEVERITIES = 5
CONNECT_TIMEOUT = 5.0  # seconds: an offline machine fails fast instead of hanging
READ_TIMEOUT = 30.0


@dataclass(frozen=True)
class Corrupted:
    """One released corrupted test set."""

    folder: str  # also its title in messages
    record: str  # robustbench.data.ZENODO_CORRUPTIONS_LINKS
    num_classes: int
    base: str  # the clean dataset, for messages
    size: str  # of the archive, for messages

    @property
    def archive(self) -> str:
        return f"{self.folder}.tar"

    @property
    def api(self) -> str:
        return f"https://zenodo.org/api/records/{self.record}"

    @property
    def page(self) -> str:
        return f"https://zenodo.org/records/{self.record}"


RELEASES = {
    "cifar10": Corrupted("CIFAR-10-C", "2535967", 10, "CIFAR-10", "2.9 GB"),
    "cifar100": Corrupted("CIFAR-100-C", "3555552", 100, "CIFAR-100", "2.9 GB"),
}


def release_of(dataset: str) -> Corrupted:
    """The released corrupted set of dataset `dataset` (CIFAR-10-C for the synthetic set)."""
    return RELEASES.get(dataset, RELEASES["cifar10"])


def folder(root, release: Corrupted = RELEASES["cifar10"]) -> Path:
    return Path(root).expanduser() / release.folder


def rows(severity: int, indices) -> np.ndarray:
    """Rows of the released files for test images `indices` at `severity`."""
    idx = np.asarray(indices, dtype=np.int64)
    if not 1 <= int(severity) <= N_SEVERITIES:
        raise DataError(f"the released corruptions' severities are 1..5, got {severity}")
    if idx.size and (idx.min() < 0 or idx.max() >= N_TEST):
        raise DataError(f"the released corruptions hold test images 0..{N_TEST - 1}; asked for index {int(idx.max())}")
    return (int(severity) - 1) * N_TEST + idx


def _open(path: Path, what: str, release: Corrupted) -> np.ndarray:
    if not path.is_file():
        raise DataError(missing_message(path.parent.parent, [path.stem], release))
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable {what} ({exc}); delete it and download {release.folder} again") from None


def load_corruption(root, name: str, release: Corrupted = RELEASES["cifar10"]) -> np.ndarray:
    """`name`'s images, memory-mapped, checked to be uint8 (50000, 32, 32, 3)."""
    path = folder(root, release) / f"{name}.npy"
    arr = _open(path, "image file", release)
    want = (N_SEVERITIES * N_TEST, 32, 32, 3)
    if arr.dtype != np.uint8 or arr.shape != want:
        raise DataError(f"{path}: expected uint8 {want}, found {arr.dtype} {arr.shape} (truncated download?)")
    return arr


def load_labels(root, test_labels=None, release: Corrupted = RELEASES["cifar10"]) -> np.ndarray:
    """labels.npy, checked: (50000,), integers in 0..classes-1, the same 10000 labels for each
    severity, and equal to `test_labels` (the clean test split's, in order) when given."""
    path = folder(root, release) / "labels.npy"
    arr = np.asarray(_open(path, "label file", release))
    if arr.shape != (N_SEVERITIES * N_TEST,) or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(
            f"{path}: expected integer labels of shape ({N_SEVERITIES * N_TEST},), found {arr.dtype} {arr.shape}"
        )
    if arr.min() < 0 or arr.max() >= release.num_classes:
        raise DataError(f"{path}: labels outside 0..{release.num_classes - 1}")
    per = arr.reshape(N_SEVERITIES, N_TEST)
    if not (per == per[0]).all():
        raise DataError(f"{path}: the five severities do not carry the same labels")
    if test_labels is not None:
        want = np.asarray(test_labels).astype(np.int64).reshape(-1)
        if want.shape != (N_TEST,) or not np.array_equal(per[0].astype(np.int64), want):
            raise DataError(
                f"{path}: labels differ from the {release.base} test split's (rows follow torchvision's test order)"
            )
    return arr


def missing_files(root, names, release: Corrupted = RELEASES["cifar10"]) -> list[str]:
    """Those of `names` (plus labels) whose file is missing."""
    f = folder(root, release)
    return [n for n in [*names, "labels"] if not (f / f"{n}.npy").is_file()]


def missing_message(root, names, release: Corrupted = RELEASES["cifar10"]) -> str:
    return (
        f"{release.folder} files missing under {folder(root, release)}: {', '.join(f'{n}.npy' for n in names)}. "
        f"Download {release.archive} ({release.size}) from {release.page} and extract it into "
        f"{Path(root).expanduser()}, "
        "or use `source: generate` to make the corruptions on the fly"
    )


def ensure(root, names, *, download: bool = True, release: Corrupted = RELEASES["cifar10"]) -> Path:
    """The release's folder with `names` and labels.npy, downloading the archive when allowed."""
    missing = missing_files(root, names, release)
    if not missing:
        return folder(root, release)
    if not download:
        raise DataError(missing_message(root, missing, release))
    fetch_archive(root, missing, release)
    still = missing_files(root, names, release)
    if still:
        raise DataError(f"{release.archive} from Zenodo lacks {', '.join(f'{n}.npy' for n in still)}")
    return folder(root, release)


def fetch_archive(root, missing=("labels",), release: Corrupted = RELEASES["cifar10"]) -> None:
    """Download and unpack Zenodo's archive (CIFAR-10-C.tar, 2.9 GB) into `root`, checking its md5
    as robustbench's downloader does, but with time-outs: offline, it fails within seconds."""
    try:
        import requests
    except ImportError:  # pragma: no cover - requests comes with robustbench
        raise DataError(
            f"downloading {release.folder} needs the 'requests' package. " + missing_message(root, missing, release)
        ) from None
    root = Path(root).expanduser()
    timeout = (CONNECT_TIMEOUT, READ_TIMEOUT)
    try:
        record = requests.get(release.api, timeout=timeout)
        record.raise_for_status()
        entry = next(f for f in record.json()["files"] if f["key"] == release.archive)
    except (requests.RequestException, ValueError, KeyError, StopIteration) as exc:
        raise DataError(
            f"cannot reach Zenodo to download {release.folder} ({type(exc).__name__}: {exc}). "
            + missing_message(root, missing, release)
        ) from None
    url = entry["links"]["self"]
    md5 = entry.get("checksum", "").split(":")[-1]
    root.mkdir(parents=True, exist_ok=True)
    part = root / (release.archive + ".part")
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
        raise DataError(
            f"downloading {url} failed ({type(exc).__name__}: {exc}). " + missing_message(root, missing, release)
        ) from None
    if md5 and digest.hexdigest() != md5:
        part.unlink(missing_ok=True)
        raise DataError(f"{release.archive}: md5 {digest.hexdigest()} differs from Zenodo's {md5}; try again")
    tmp = root / f".{release.folder}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(part) as tar:
        tar.extractall(tmp, filter="data")
    dest = folder(root, release)
    dest.mkdir(parents=True, exist_ok=True)
    for f in (tmp / release.folder).glob("*.npy"):
        f.replace(dest / f.name)
    shutil.rmtree(tmp, ignore_errors=True)
    part.unlink(missing_ok=True)
