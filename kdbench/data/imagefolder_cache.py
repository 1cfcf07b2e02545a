"""An image folder's decoded arrays, cached beside it by content: the listing's files' digests name
the cache, and a cache whose digest or size does not match is decoded again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kdbench.data.paths import decoded_cache_dir
from kdbench.util.lazy import lazy

torch = lazy("torch")

if TYPE_CHECKING:
    from kdbench.data.imagefolder import Listing

CACHE_VERSION = 1  # bump when the cached arrays' layout or the decoding changes


def _cache_files(listing: Listing, name: str) -> tuple[Path, Path]:
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
            *listing.shape.key,
        ]
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:32]
    base = decoded_cache_dir() / f"{name}-imagefolder-{listing.folder.name}-{key}"
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


def _read_cached_images(npy_path: Path, n: int, side: int = 32) -> torch.Tensor | None:
    try:
        arr = np.load(npy_path, allow_pickle=False, mmap_mode="c")  # paged in as used; writes stay private
    except (OSError, ValueError):
        return None
    if arr.dtype != np.uint8 or arr.shape != (n, 3, side, side):
        return None
    return torch.from_numpy(arr)
