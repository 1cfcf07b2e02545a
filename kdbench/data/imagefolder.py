"""An ImageFolder of same-sized images (32x32 for CIFAR), `train/<class>/*` and `test/<class>/*`,
in torchvision's order: sorted class folders (the label ids), then a sorted walk and sorted names.
Other layouts (Tiny-ImageNet's) build a `Listing` themselves and share the decoding and caching.

Decoding 60k JPEGs takes seconds, so decoded splits are cached as .npy under
`decoded_cache_dir()`, keyed by the listing (names, sizes, mtimes) and the decoder version, and
read back memory-mapped (copy on write), so a large split is paged in as it is used rather than
read whole. The per-file hashes are taken while decoding and kept beside the cache, so a cached
load reads no image files and still knows the dataset's identity.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import os
import stat
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kdbench.data import register_dataset
from kdbench.data.errors import DataError
from kdbench.data.imagefolder_cache import _cache_files, _read_cached_digest, _read_cached_images, _split_digest
from kdbench.data.tensors import TensorData
from kdbench.util.atomic import atomic_path, write_text
from kdbench.util.lazy import lazy
from kdbench.util.names import SPLITS

torch = lazy("torch")

# torchvision's IMG_EXTENSIONS: the same files count as images here as in ImageFolder, so
# positions agree with it.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Shape:
    """What decoding makes of each file: a `side` x `side` RGB image, the file as it is or, with
    `resize`, torchvision's Resize(resize) (the shorter side, bilinear, on the PIL image) then
    CenterCrop(side), as an ImageNet evaluation transform does. `title` names the source in errors."""

    side: int = 32
    resize: int | None = None
    title: str = ""

    @property
    def key(self) -> list:
        """Its part of the cache key: empty for CIFAR's 32 pixels as they are, so their keys stay."""
        return [] if (self.side, self.resize) == (32, None) else [self.side, self.resize]

    def make(self, path: str, im) -> np.ndarray:
        """HWC uint8 pixels of the opened image `im`, or a DataError naming `path`."""
        if self.resize is None and im.size != (self.side, self.side):
            what = f" ({self.title})" if self.title else ""
            raise DataError(
                f"{path}: image is {im.size[0]}x{im.size[1]} pixels, expected {self.side}x{self.side}{what}"
            )
        # Grey and palette images convert to RGB without loss; alpha or CMYK would not.
        if im.mode not in ("RGB", "L", "P"):
            raise DataError(f"{path}: image mode is {im.mode}, expected RGB (or L/P, converted to RGB)")
        im = im if im.mode == "RGB" else im.convert("RGB")
        if self.resize is not None:
            from torchvision.transforms import functional as TF

            im = TF.center_crop(TF.resize(im, self.resize), self.side)
        return np.asarray(im, dtype=np.uint8)


CIFAR = Shape(32, None, "CIFAR")

# Below this many files a process pool costs more than it saves.
PARALLEL_MIN_FILES = 1024


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
    shape: Shape = CIFAR  # what each file is decoded to

    def add(self, path: str, name: str, label: int, missing: str = "cannot read") -> None:
        """One more file; `missing` says why an unreadable one was expected."""
        try:
            st = os.stat(path)
        except OSError as exc:  # a dangling link, say
            raise DataError(f"{path}: {missing} ({exc.strerror})") from None
        if not stat.S_ISREG(st.st_mode):  # reading a named pipe would wait for a writer forever
            raise DataError(f"{path}: not a regular file (a pipe, socket or device); an image folder holds image files")
        self.paths.append(path)
        self.names.append(name)
        self.labels.append(label)
        self.sizes.append(st.st_size)
        self.mtimes.append(st.st_mtime_ns)

    def data(self, images: torch.Tensor) -> TensorData:
        """The split: `images` decoded from these files, their labels, positions in listing order."""
        n = len(self.paths)
        labels = torch.tensor(self.labels, dtype=torch.int64)
        return TensorData(images, labels, torch.arange(n, dtype=torch.int64), list(self.names))


def list_split(folder: Path, shape: Shape = CIFAR) -> Listing:
    """torchvision's find_classes + make_dataset order, with sizes and mtimes for the cache key."""
    folder = Path(folder)
    try:
        classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the ImageFolder split ({exc})") from None
    if not classes:
        raise DataError(f"{folder}: no class folders; expected {folder}/<class>/*.png|jpg, one folder per class")
    listing = Listing(folder, classes, [], [], [], [], [], shape)
    base = str(folder)
    for label, cls in enumerate(classes):
        count = 0
        for dirpath, _, fnames in sorted(os.walk(os.path.join(base, cls), followlinks=True)):
            for fname in sorted(fnames):
                if not fname.lower().endswith(IMG_EXTENSIONS):
                    continue
                path = os.path.join(dirpath, fname)
                # dirpath starts with base + sep (os.walk joins onto it); relpath costs 10x more.
                listing.add(path, path[len(base) + 1 :].replace(os.sep, "/"), label)
                count += 1
        if count == 0:
            raise DataError(f"{folder / cls}: class folder holds no images (looked for {', '.join(IMG_EXTENSIONS)})")
    return listing


def _decode_one(path: str, raw: bytes, shape: Shape = CIFAR) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(raw)) as im:
            return shape.make(path, im)
    except DataError:
        raise
    except Exception as exc:  # truncated or not an image: PIL raises several types
        raise DataError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None


def _decode_chunk(paths: list[str], decode: bool, shape: Shape = CIFAR) -> tuple[np.ndarray | None, list[str]]:
    """Read each file once: its sha256 for the identity and, if `decode`, its HWC pixels."""
    digests = []
    pixels = np.empty((len(paths), shape.side, shape.side, 3), dtype=np.uint8) if decode else None
    for i, path in enumerate(paths):
        try:
            with open(path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc})") from None
        digests.append(hashlib.sha256(raw).hexdigest())
        if decode:
            pixels[i] = _decode_one(path, raw, shape)
    return pixels, digests


def _workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


def decode_files(paths: list[str], decode: bool = True, shape: Shape = CIFAR) -> tuple[torch.Tensor | None, list[str]]:
    """(uint8 (N, 3, side, side) or None, per-file sha256) for `paths`, each decoded to `shape`, in
    parallel when it pays.

    Processes, not threads: decoding a 32x32 JPEG is mostly Python-level overhead under the GIL,
    and threads measured slower than one core. Fork, because the workers need only PIL and
    numpy and a fresh interpreter would spend seconds importing torch first.
    """
    n = len(paths)
    workers = _workers()
    if n < PARALLEL_MIN_FILES or workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        pixels, digests = _decode_chunk(paths, decode, shape)
        chunks = [(0, pixels)]
    else:
        step = max(256, math.ceil(n / (4 * workers)))
        starts = list(range(0, n, step))
        digests, chunks = [], []
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_decode_chunk, paths[s : s + step], decode, shape) for s in starts]
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
    images = torch.empty((n, 3, shape.side, shape.side), dtype=torch.uint8)
    for start, pixels in chunks:
        images[start : start + len(pixels)] = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    return images, digests


def split_from_listing(listing: Listing, want_images: bool, name: str) -> tuple[torch.Tensor | None, str]:
    """(images if wanted, split digest), from the cache when it holds them, else by reading files;
    `name` (the dataset's) prefixes the cache files."""
    n = len(listing.paths)
    npy_path, meta_path = _cache_files(listing, name)
    digest = _read_cached_digest(meta_path, n)
    if digest is not None and not want_images:
        return None, digest
    if digest is not None:
        images = _read_cached_images(npy_path, n, listing.shape.side)
        if images is not None:
            return images, digest
    images, file_digests = decode_files(listing.paths, want_images, listing.shape)
    digest = _split_digest(listing, file_digests)
    try:
        if images is not None:
            with atomic_path(npy_path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, images.numpy())
        # Written after the arrays: a cache entry counts only once its digest is there.
        write_text(meta_path, json.dumps({"count": n, "digest": digest, "source": str(listing.folder)}))
    except OSError as exc:
        # The data itself is fine; a read-only or full cache only costs the next load its speed.
        warnings.warn(
            f"could not cache decoded {listing.folder} in {npy_path.parent} ({exc}); "
            f"set KDBENCH_CACHE_DIR to a writable folder to avoid decoding again",
            stacklevel=2,
        )
    return images, digest


def load_imagefolder(root: Path, splits, name: str, shape: Shape = CIFAR):
    """Read `root`/train and `root`/test as ImageFolders of dataset `name`; decode only the
    `splits` asked. A split not asked for may be absent (exporting the test split needs no
    train/); the identity then says it is."""
    root = Path(root)
    present = [s for s in SPLITS if s in splits or (root / s).is_dir()]
    listings = {s: list_split(root / s, shape) for s in present}
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
        images, digests[split] = split_from_listing(listings[split], split in splits, name)
        if split in splits:
            out[split] = listings[split].data(images)
    # what decoding made of the files is part of the data: a shape enters the key (CIFAR's keeps its old one)
    key = "".join(f"{s}\t{digests[s]}\n" for s in SPLITS) + "".join(f"{v}\n" for v in shape.key)
    prefix = name if name == "imagefolder" else f"{name}-imagefolder"
    return out, classes, f"{prefix}:" + hashlib.sha256(key.encode()).hexdigest()[:16]


@register_dataset("imagefolder")
def imagefolder(
    root: Path, splits, *, download: bool = False, image_size: int | None = None, resize: int | None = None
):
    """A team's own images, `root`/train/<class>/* and `root`/test/<class>/*, at any size
    (params: image_size, the side the models see; resize, the shorter side before a centre crop)."""
    check_params({"image_size": image_size, "resize": resize})
    return load_imagefolder(Path(root), splits, "imagefolder", Shape(int(image_size), resize and int(resize)))


def check_params(params: dict, train_subset=None, test_subset=None) -> None:
    unknown = sorted(set(params) - {"image_size", "resize"})
    if unknown:
        raise DataError(f"imagefolder dataset: unknown parameter(s) {unknown}; expected: image_size, resize")
    side, resize = params.get("image_size"), params.get("resize")
    if not isinstance(side, int) or isinstance(side, bool) or not 8 <= side <= 1024:
        raise DataError(
            f"imagefolder dataset: params.image_size must be a whole number of pixels from 8 to 1024 (the side of "
            f"the square images the models see), found {side!r}"
        )
    if resize is not None and (not isinstance(resize, int) or isinstance(resize, bool) or resize < side):
        raise DataError(
            f"imagefolder dataset: params.resize must be a whole number of pixels of at least image_size ({side}): "
            f"the shorter side is resized to it, then the centre {side}x{side} is cropped; found {resize!r}"
        )


imagefolder.check_params = check_params
imagefolder.image_size = lambda params: params.get("image_size")
