"""An ImageFolder of 32x32 images, `train/<class>/*` and `test/<class>/*`, in torchvision's order:
sorted class folders (the label ids), then a sorted walk and sorted names.

Decoding 60k JPEGs takes seconds, so decoded splits are cached as .npy under
`decoded_cache_dir()`, keyed by the listing (names, sizes, mtimes) and the decoder version. The
per-file hashes are taken while decoding and kept beside the cache, so a cached load reads no
image files and still knows the dataset's identity.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from kdbench.data.errors import DataError
from kdbench.data.paths import decoded_cache_dir
from kdbench.data.tensors import TensorData
from kdbench.util.atomic import atomic_path, write_text
from kdbench.util.lazy import lazy
from kdbench.util.names import SPLITS

if TYPE_CHECKING:
    from kdbench.data.cifar import Release

torch = lazy("torch")

# torchvision's IMG_EXTENSIONS: the same files count as images here as in ImageFolder, so
# positions agree with it.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGE_SIZE = (32, 32)
CACHE_VERSION = 1  # bump when the cached arrays' layout or the decoding changes

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
            raise DataError(f"{folder / cls}: class folder holds no images (looked for {', '.join(IMG_EXTENSIONS)})")
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
        [
            CACHE_VERSION,
            PIL.__version__,
            str(listing.folder.resolve()),
            listing.names,
            listing.labels,
            listing.sizes,
            listing.mtimes,
        ]
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
        warnings.warn(
            f"could not cache decoded {listing.folder} in {npy_path.parent} ({exc}); "
            f"set KDBENCH_CACHE_DIR to a writable folder to avoid decoding again",
            stacklevel=2,
        )
    return images, digest


def load_imagefolder(root: Path, splits, release: Release):
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
