"""CIFAR-10 and CIFAR-100 read from disk in either of two layouts, told apart by what the root holds.

A `Release` says what differs between the two (folder and file names, label keys, sizes); the
datasets `cifar10` and `cifar100` are this module's loader bound to one each.

pickle       torchvision's `cifar-10-batches-py/` (data_batch_1..5, test_batch, batches.meta) or
             `cifar-100-python/` (train, test, meta; fine labels), either under the root or the
             root itself. Order: the batches' order, as torchvision.
imagefolder  `train/<class>/*.png|jpg` and `test/<class>/...`. Classes and order exactly as
             torchvision.datasets.ImageFolder: sorted class folders, then sorted walk and names.

Decoding 60k JPEGs takes seconds, so decoded ImageFolder splits are cached as .npy under
`decoded_cache_dir()`, keyed by the listing (names, sizes, mtimes) and the decoder version.

Identity (for content hashes) is a hash of the files' bytes, by name relative to the dataset
folder, over both splits whichever split was asked for: the same files give the same identity
on any machine, and any changed byte gives another. For ImageFolder the per-file hashes are
taken while decoding and kept beside the cache, so a cached load reads no image files.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import os
import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_path, write_text
from ..hashing import file_sha256
from ..lazy import lazy
from .errors import DataError
from .paths import decoded_cache_dir
from .tensors import Splits, TensorData

torch = lazy("torch")

SPLITS = ("train", "test")
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


CIFAR10 = Release("cifar10", "CIFAR-10", "cifar-10-batches-py", "cifar-10-python.tar.gz", "batches.meta", "label_names", "labels",
                  {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
                  {"train": 50_000, "test": 10_000}, "CIFAR10")  # fmt: skip
CIFAR100 = Release("cifar100", "CIFAR-100", "cifar-100-python", "cifar-100-python.tar.gz", "meta", "fine_label_names", "fine_labels",
                   {"train": ("train",), "test": ("test",)}, {"train": 50_000, "test": 10_000}, "CIFAR100")  # fmt: skip
# torchvision's IMG_EXTENSIONS: the same files count as images here as in ImageFolder, so
# positions agree with it.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGE_SIZE = (32, 32)
CACHE_VERSION = 1  # bump when the cached arrays' layout or the decoding changes

# Below this many files a process pool costs more than it saves.
PARALLEL_MIN_FILES = 1024


# ---------------------------------------------------------------- entry point
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
            raise DataError(f"{split}_subset {subset} is larger than {release.title}'s {split} split ({sizes[split]:,} images)")


def load(root: Path, splits, *, download: bool = False, format: str = "auto", release: Release = CIFAR10):
    """A CIFAR release from torchvision's pickles or an ImageFolder, autodetected (param: format=auto|pickle|imagefolder).

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
    return load_imagefolder(where, splits, release)


def locate(root: Path, format: str = "auto", splits=SPLITS, release: Release = CIFAR10) -> tuple[str | None, Path | None]:
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
    return (f"no {release.title} data found under data root {root}{state}: looked in {'; '.join(looked)}. "
            + where_to_put(root, release))


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


# ---------------------------------------------------------------- pickles
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
        raise DataError(f"{path}: '{release.label_key}' must hold one label per image ({data.shape[0]}), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels must lie in 0..{num_classes - 1} ({release.meta_file} names {num_classes} classes)")
    return data, labels


def load_pickles(folder: Path, splits, release: Release = CIFAR10):
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


def write_cifar_pickles(root: str | Path, splits: Splits, release: Release = CIFAR10) -> Path:
    """Write `splits` as torchvision's pickles under `root` (train spread over the release's
    training batches, in order); returns that folder. For fixtures and demos."""
    folder = Path(root) / release.pickle_dir
    folder.mkdir(parents=True, exist_ok=True)

    def dump(name: str, obj: dict) -> None:
        with atomic_path(folder / name) as tmp, open(tmp, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)

    dump(release.meta_file, {release.class_key: list(splits.classes), "num_cases_per_batch": 10000, "num_vis": 3072})
    (test_name,) = release.batches["test"]
    batches = [(test_name, splits.test.images, splits.test.labels)]
    positions = np.array_split(np.arange(len(splits.train)), len(release.batches["train"]))
    for name, pos in zip(release.batches["train"], positions):
        batches.append((name, splits.train.images[pos], splits.train.labels[pos]))
    for name, images, labels in batches:
        data = images.reshape(len(images), -1).numpy().astype(np.uint8)
        dump(name, {"batch_label": name, release.label_key: [int(v) for v in labels], "data": data,
                    "filenames": [f"{name}_{i:05d}.png" for i in range(len(images))]})
    return folder


# ---------------------------------------------------------------- ImageFolder
@dataclass
class Listing:
    """One ImageFolder split, in torchvision's order."""

    folder: Path
    classes: list[str]
    paths: list[str]  # as os.walk gives them, for reading and error messages
    names: list[str]  # relative to `folder`, '/'-separated: the part that is the same on every machine
    labels: list[int]
    sizes: list[int]
    mtimes: list[int]


def list_split(folder: Path) -> Listing:
    """torchvision's find_classes + make_dataset order, with sizes and mtimes for the cache key."""
    folder = Path(folder)
    try:
        classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the ImageFolder split ({exc})") from None
    if not classes:
        raise DataError(f"{folder}: no class folders; expected {folder}/<class>/*.png|jpg, one folder per class")
    listing = Listing(folder, classes, [], [], [], [], [])
    base = str(folder)
    for label, cls in enumerate(classes):
        count = 0
        for dirpath, _, fnames in sorted(os.walk(os.path.join(base, cls), followlinks=True)):
            for fname in sorted(fnames):
                if not fname.lower().endswith(IMG_EXTENSIONS):
                    continue
                path = os.path.join(dirpath, fname)
                try:
                    st = os.stat(path)
                except OSError as exc:  # a dangling link, say
                    raise DataError(f"{path}: cannot read ({exc})") from None
                listing.paths.append(path)
                # dirpath starts with base + sep (os.walk joins onto it); relpath costs 10x more.
                listing.names.append(path[len(base) + 1 :].replace(os.sep, "/"))
                listing.labels.append(label)
                listing.sizes.append(st.st_size)
                listing.mtimes.append(st.st_mtime_ns)
                count += 1
        if count == 0:
            raise DataError(
                f"{folder / cls}: class folder holds no images (looked for {', '.join(IMG_EXTENSIONS)})"
            )
    return listing


def _decode_one(path: str, raw: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(raw)) as im:
            if im.size != IMAGE_SIZE:
                raise DataError(f"{path}: image is {im.size[0]}x{im.size[1]} pixels, expected 32x32 (CIFAR)")
            # Grey and palette images convert to RGB without loss; alpha or CMYK would not.
            if im.mode not in ("RGB", "L", "P"):
                raise DataError(f"{path}: image mode is {im.mode}, expected RGB (or L/P, converted to RGB)")
            return np.asarray(im if im.mode == "RGB" else im.convert("RGB"), dtype=np.uint8)
    except DataError:
        raise
    except Exception as exc:  # truncated or not an image: PIL raises several types
        raise DataError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None


def _decode_chunk(paths: list[str], decode: bool) -> tuple[np.ndarray | None, list[str]]:
    """Read each file once: its sha256 for the identity and, if `decode`, its HWC pixels."""
    digests = []
    pixels = np.empty((len(paths), *IMAGE_SIZE, 3), dtype=np.uint8) if decode else None
    for i, path in enumerate(paths):
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc})") from None
        digests.append(hashlib.sha256(raw).hexdigest())
        if decode:
            pixels[i] = _decode_one(path, raw)
    return pixels, digests


def _workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def decode_files(paths: list[str], decode: bool = True) -> tuple[torch.Tensor | None, list[str]]:
    """(uint8 (N, 3, 32, 32) or None, per-file sha256) for `paths`, in parallel when it pays.

    Processes, not threads: decoding a 32x32 JPEG is mostly Python-level overhead under the GIL,
    and threads measured slower than one core. Fork, because the workers need only PIL and
    numpy and a fresh interpreter would spend seconds importing torch first.
    """
    n = len(paths)
    workers = _workers()
    if n < PARALLEL_MIN_FILES or workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        pixels, digests = _decode_chunk(paths, decode)
        chunks = [(0, pixels)]
    else:
        size = max(256, math.ceil(n / (4 * workers)))
        starts = list(range(0, n, size))
        digests, chunks = [], []
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_decode_chunk, paths[s : s + size], decode) for s in starts]
            try:
                for start, future in zip(starts, futures):
                    pixels, part = future.result()
                    digests.extend(part)
                    chunks.append((start, pixels))
            except BaseException:
                # Report a bad file now, not after decoding every chunk still queued.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    if not decode:
        return None, digests
    images = torch.empty((n, 3, *IMAGE_SIZE), dtype=torch.uint8)
    for start, pixels in chunks:
        images[start : start + len(pixels)] = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    return images, digests


def _cache_files(listing: Listing, release: Release) -> tuple[Path, Path]:
    import PIL

    # The absolute folder is in the key (the cache is per machine anyway), so two copies with
    # equal listings never share an entry; the PIL version is, because decoders may change.
    key_src = json.dumps(
        [CACHE_VERSION, PIL.__version__, str(listing.folder.resolve()), listing.names, listing.labels,
         listing.sizes, listing.mtimes]
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:32]
    base = decoded_cache_dir() / f"{release.name}-imagefolder-{listing.folder.name}-{key}"
    return base.with_suffix(".npy"), base.with_suffix(".json")


def _split_digest(listing: Listing, file_digests: list[str]) -> str:
    text = "".join(f"{name}\t{d}\n" for name, d in zip(listing.names, file_digests))
    return hashlib.sha256(text.encode()).hexdigest()


def _read_cached_digest(meta_path: Path, n: int) -> str | None:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("count") == n and isinstance(meta.get("digest"), str):
            return meta["digest"]
    except (OSError, ValueError, AttributeError):
        pass  # absent or damaged: decode again and rewrite it
    return None


def _read_cached_images(npy_path: Path, n: int) -> torch.Tensor | None:
    try:
        arr = np.load(npy_path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if arr.dtype != np.uint8 or arr.shape != (n, 3, *IMAGE_SIZE):
        return None
    return torch.from_numpy(arr)


def _split_from_listing(listing: Listing, want_images: bool, release: Release) -> tuple[torch.Tensor | None, str]:
    """(images if wanted, split digest), from the cache when it holds them, else by reading files."""
    n = len(listing.paths)
    npy_path, meta_path = _cache_files(listing, release)
    digest = _read_cached_digest(meta_path, n)
    if digest is not None and not want_images:
        return None, digest
    if digest is not None:
        images = _read_cached_images(npy_path, n)
        if images is not None:
            return images, digest
    images, file_digests = decode_files(listing.paths, decode=want_images)
    digest = _split_digest(listing, file_digests)
    try:
        if images is not None:
            with atomic_path(npy_path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, images.numpy())
        # Written after the arrays: a cache entry counts only once its digest is there.
        write_text(meta_path, json.dumps({"count": n, "digest": digest, "source": str(listing.folder)}))
    except OSError as exc:
        # The data itself is fine; a read-only or full cache only costs the next load its speed.
        warnings.warn(f"could not cache decoded {listing.folder} in {npy_path.parent} ({exc}); "
                      f"set KDBENCH_CACHE_DIR to a writable folder to avoid decoding again", stacklevel=2)
    return images, digest


def load_imagefolder(root: Path, splits, release: Release = CIFAR10):
    """Read `root`/train and `root`/test as ImageFolders; decode only the `splits` asked. A split
    not asked for may be absent (exporting the test split needs no train/); the identity then
    says it is."""
    root = Path(root)
    present = [s for s in SPLITS if s in splits or (root / s).is_dir()]
    listings = {s: list_split(root / s) for s in present}
    classes = listings[present[0]].classes
    if len(listings) == 2 and listings["train"].classes != listings["test"].classes:
        train_classes, test_classes = listings["train"].classes, listings["test"].classes
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DataError(
            f"{root}: train/ and test/ must have the same class folders (labels are their sorted "
            f"positions); only in train/: {', '.join(only_train) or '-'}; only in test/: {', '.join(only_test) or '-'}"
        )
    out, digests = {}, dict.fromkeys(SPLITS, "absent")
    for split in present:
        images, digests[split] = _split_from_listing(listings[split], split in splits, release)
        if split in splits:
            n = len(listings[split].paths)
            labels = torch.tensor(listings[split].labels, dtype=torch.int64)
            out[split] = TensorData(images, labels, torch.arange(n, dtype=torch.int64))
    key = "".join(f"{s}\t{digests[s]}\n" for s in SPLITS)
    return out, classes, f"{release.name}-imagefolder:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def write_imagefolder(root: str | Path, splits: Splits, ext: str = "png") -> Path:
    """Write `splits` as `root`/train|test/<class>/<n>.<ext>; returns `root`. Files are numbered
    per class in split order, so ImageFolder order is the split's order stably sorted by label.
    PNG keeps pixels exactly; JPEG (ext "jpg") does not."""
    root = Path(root)
    for split, data in (("train", splits.train), ("test", splits.test)):
        counters = [0] * len(splits.classes)
        width = max(4, len(str(len(data))))
        for cls in splits.classes:
            (root / split / cls).mkdir(parents=True, exist_ok=True)
        for img, label in zip(data.images, data.labels.tolist()):
            path = root / split / splits.classes[label] / f"{counters[label]:0{width}d}.{ext}"
            counters[label] += 1
            Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
    return root
