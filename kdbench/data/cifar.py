"""CIFAR-10 and CIFAR-100 read from disk in either of two layouts, told apart by what the root holds.

A `Release` says what differs between the two (folder and file names, label keys, sizes); the
datasets `cifar10` and `cifar100` are this module's loader bound to one each.

pickle       torchvision's `cifar-10-batches-py/` (data_batch_1..5, test_batch, batches.meta) or
             `cifar-100-python/` (train, test, meta; fine labels), either under the root or the
             root itself. Order: the batches' order, as torchvision.
imagefolder  `train/<class>/*.png|jpg` and `test/<class>/...`. Classes and order exactly as
             torchvision.datasets.ImageFolder: sorted class folders, then sorted walk and names.

Identity (for content hashes) is a hash of the files' bytes, by name relative to the dataset
folder, over both splits whichever split was asked for: the same files give the same identity
on any machine, and any changed byte gives another. The readers are cifar_pickles.py and
imagefolder.py; writers.py writes both layouts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from kdbench.data import register_dataset
from kdbench.data.cifar_pickles import load_pickles
from kdbench.data.errors import DataError
from kdbench.data.imagefolder import load_imagefolder
from kdbench.util.names import SPLITS

FORMATS = ("auto", "pickle", "imagefolder")


@dataclass(frozen=True)
class Release:
    """What one CIFAR release's files are called and hold."""

    name: str  # the dataset's registered name, and the prefix of its identity
    title: str  # for messages
    pickle_dir: str
    archive: str
    meta_file: str
    class_key: str  # the meta file's list of class names
    label_key: str  # each batch's list of labels
    batches: dict = field(hash=False)  # split -> file names, in order
    sizes: dict = field(hash=False)  # split -> images
    torchvision: str  # the torchvision.datasets class that downloads it

    @property
    def pickle_files(self) -> tuple[str, ...]:
        return (self.meta_file, *self.batches["train"], *self.batches["test"])

    @property
    def pickle_listing(self) -> str:
        return ", ".join(self.pickle_files)


CIFAR10 = Release(
    "cifar10",
    "CIFAR-10",
    "cifar-10-batches-py",
    "cifar-10-python.tar.gz",
    "batches.meta",
    "label_names",
    "labels",
    {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
    {"train": 50_000, "test": 10_000},
    "CIFAR10",
)
CIFAR100 = Release(
    "cifar100",
    "CIFAR-100",
    "cifar-100-python",
    "cifar-100-python.tar.gz",
    "meta",
    "fine_label_names",
    "fine_labels",
    {"train": ("train",), "test": ("test",)},
    {"train": 50_000, "test": 10_000},
    "CIFAR100",
)


def _check_format(format, release: Release) -> None:
    if format not in FORMATS:
        raise DataError(f"{release.name}: format must be one of {', '.join(FORMATS)}; got {format!r}")


def check_params(params: dict, train_subset=None, test_subset=None, *, release: Release = CIFAR10) -> None:
    """What `load` would refuse whatever the files, said before anything trains (suite validation)."""
    unknown = sorted(set(params) - {"format"})
    if unknown:
        raise DataError(f"{release.name} dataset: unknown parameter(s) {unknown}; expected: format")
    _check_format(params.get("format", "auto"), release)
    sizes = release.sizes
    for split, subset in (("train", train_subset), ("test", test_subset)):
        if subset is not None and subset > sizes[split]:
            raise DataError(
                f"{split}_subset {subset} is larger than {release.title}'s {split} split ({sizes[split]:,} images)"
            )


def load(root: Path, splits, *, download: bool = False, format: str = "auto", release: Release = CIFAR10):
    """A CIFAR release from torchvision's pickles or an ImageFolder, autodetected
    (param: format=auto|pickle|imagefolder).

    The registry's loader: (dict split -> TensorData, classes, identity) for the `splits` asked."""
    root = Path(root)
    _check_format(format, release)
    found, where = locate(root, format, splits, release)
    if found is None:
        if download and format in ("auto", "pickle"):
            download_pickles(root, release)
            found, where = "pickle", root / release.pickle_dir
        else:
            raise DataError(missing_message(root, format, release))
    if found == "pickle":
        return load_pickles(where, splits, release)
    return load_imagefolder(where, splits, release.name)


@register_dataset("cifar10")
def cifar10(root: Path, splits, *, download: bool = False, format: str = "auto"):
    """CIFAR-10 from torchvision's pickles or an ImageFolder (param: format=auto|pickle|imagefolder)."""
    return load(root, splits, download=download, format=format, release=CIFAR10)


@register_dataset("cifar100")
def cifar100(root: Path, splits, *, download: bool = False, format: str = "auto"):
    """CIFAR-100 from torchvision's pickles or an ImageFolder (param: format=auto|pickle|imagefolder)."""
    return load(root, splits, download=download, format=format, release=CIFAR100)


cifar10.check_params = functools.partial(check_params, release=CIFAR10)
cifar100.check_params = functools.partial(check_params, release=CIFAR100)
cifar10.train_size = lambda params: CIFAR10.sizes["train"]
cifar100.train_size = lambda params: CIFAR100.sizes["train"]
cifar10.num_classes = lambda params: 10
cifar100.num_classes = lambda params: 100
cifar10.image_size = cifar100.image_size = lambda params: 32


def locate(
    root: Path, format: str = "auto", splits=SPLITS, release: Release = CIFAR10
) -> tuple[str | None, Path | None]:
    """(format, folder) of the release's data under `root`, or (None, None). Pickles win over an
    ImageFolder in the same root: they are the canonical release. An ImageFolder needs a folder
    for each of the `splits` asked only."""
    if format in ("auto", "pickle"):
        for folder in (root / release.pickle_dir, root):
            if folder.is_dir() and any((folder / name).is_file() for name in release.pickle_files):
                return "pickle", folder
    if format in ("auto", "imagefolder"):
        if all((root / split).is_dir() for split in splits):
            return "imagefolder", root
    return None, None


def where_to_put(root: Path, release: Release = CIFAR10) -> str:
    return (
        f"Put one of these there: the {release.pickle_dir}/ folder from {release.archive} "
        f"({release.pickle_listing}) as {root / release.pickle_dir}/; or an ImageFolder, "
        f"{root / 'train'}/<class>/*.png|jpg and {root / 'test'}/<class>/*.png|jpg with the same class "
        f"folders in both. Or point at the data with --data-root DIR or $KDBENCH_DATA_ROOT, "
        f"or allow downloading (needs internet)."
    )


def missing_message(root: Path, format: str = "auto", release: Release = CIFAR10) -> str:
    looked = []
    if format in ("auto", "pickle"):
        looked.append(f"{root / release.pickle_dir}/ and {root}/ for torchvision's pickles")
    if format in ("auto", "imagefolder"):
        looked.append(f"{root / 'train'}/ + {root / 'test'}/ for an ImageFolder")
    state = "" if root.is_dir() else " (that folder does not exist)"
    return (
        f"no {release.title} data found under data root {root}{state}: looked in {'; '.join(looked)}. "
        + where_to_put(root, release)
    )


def download_pickles(root: Path, release: Release = CIFAR10) -> None:
    """Fetch and unpack torchvision's archive into `root` (its md5 is checked)."""
    # torchvision is imported here only: it costs seconds and most loads never download.
    import torchvision.datasets
    from torchvision.datasets.utils import download_and_extract_archive

    source = getattr(torchvision.datasets, release.torchvision)
    try:
        root.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(source.url, str(root), filename=source.filename, md5=source.tgz_md5)
    except Exception as exc:  # offline, proxy, disk full, bad checksum: all mean "place it by hand"
        raise DataError(
            f"could not download {release.title} from {source.url} into data root {root} "
            f"({type(exc).__name__}: {exc}). " + where_to_put(root, release)
        ) from exc
    if locate(root, "pickle", SPLITS, release)[0] is None:
        raise DataError(f"downloaded {release.title} into {root} but found no {release.pickle_dir}/ there afterwards")
