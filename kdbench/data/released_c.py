"""The released Tiny-ImageNet-C and ImageNet-C folders, `<corruption>/<severity>/<wnid>/<file>`
(Hendrycks & Dietterich, 2019), read as the corrupted copies of a clean test split.

Each clean test image is found by its file name under its class's folder, so the corrupted split
is in the clean split's order and a test subset picks the same images. A file filed under
another class than the clean split gives it, a class folder the clean split lacks, and a missing
file are each named. Decoded images are cached as the clean splits are.
"""

from __future__ import annotations

import os
from pathlib import Path

from kdbench.data.errors import DataError
from kdbench.data.imagefolder import IMG_EXTENSIONS, Listing, Shape, split_from_listing
from kdbench.data.tensors import TensorData


def corrupted_root(root: Path, release: str) -> Path:
    """`root`/`release` (e.g. Tiny-ImageNet-C) when it exists, else `root` itself."""
    return root / release if (root / release).is_dir() else root


def load_released(
    root: Path,
    release: str,
    clean: Listing,
    corruption: str,
    severity: int,
    name: str,
) -> TensorData:
    """The clean split `clean` (its files' base names and labels) as corrupted in the release's
    `corruption`/`severity` folder under `root`, decoded to the clean split's size."""
    base = corrupted_root(Path(root), release)
    folder = base / corruption / str(int(severity))
    if not folder.is_dir():
        state = "" if base.is_dir() else " (that folder does not exist)"
        raise DataError(
            f"{folder}: missing{state}; expected the released {release} layout, "
            f"<root>/{release}/<corruption>/<severity>/<wnid>/<file>, under the data root or evaluate.corruptions.root"
        )
    try:
        wnids = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list ({exc})") from None
    strange = [w for w in wnids if w not in clean.classes]
    if strange:
        raise DataError(
            f"{folder / strange[0]}: class {strange[0]} is not a class of the clean split "
            f"({len(clean.classes)} classes): the {release} folder and the clean data do not match"
        )
    filed = {}  # file name -> the class folder it sits in
    for wnid in wnids:
        for entry in os.listdir(folder / wnid):
            if entry.lower().endswith(IMG_EXTENSIONS):
                filed[entry] = wnid
    side = clean.shape.side
    listing = Listing(folder, clean.classes, [], [], [], [], [], Shape(side, None, f"{release}"))
    for name_in_clean, label in zip(clean.names, clean.labels):
        file = name_in_clean.rsplit("/", 1)[-1]
        wnid = clean.classes[label]
        if file not in filed:
            raise DataError(f"{folder / wnid / file}: missing; the clean split holds {name_in_clean} ({wnid})")
        if filed[file] != wnid:
            raise DataError(
                f"{folder / filed[file] / file}: filed under class {filed[file]}, but the clean split labels "
                f"{name_in_clean} as {wnid}: the {release} folder and the clean data disagree on its class"
            )
        listing.add(str(folder / wnid / file), f"{wnid}/{file}", label)
    split_from_listing(listing, True, name)  # decoded once into the cache ...
    images, _ = split_from_listing(listing, True, name)  # ... and read back memory-mapped: 75 cells stay on disk
    return listing.data(images)
