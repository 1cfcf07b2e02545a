"""Tiny-ImageNet (Le & Yang, 2015): 200 ImageNet classes at 64x64, in its released layout.

    <root>/tiny-imagenet-200/   (or <root> itself)
      wnids.txt                 the 200 class ids (WordNet ids), one per line
      train/<wnid>/images/*.JPEG            500 per class
      val/val_annotations.txt   <file>\\t<wnid>\\t<box>: the label of each validation image
      val/images/*.JPEG                     50 per class

The test split is the released val (the release's test/ has no labels). Labels are the wnids'
sorted positions: the order of torchvision's ImageFolder over train/, and of the released
Tiny-ImageNet-C, whose folders are `<corruption>/<severity>/<wnid>/`. Images are decoded once
and cached as imagefolder.py does; the identity is a hash of the files' bytes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from kdbench.data import register_dataset
from kdbench.data.errors import DataError
from kdbench.data.imagefolder import IMG_EXTENSIONS, Listing, Shape, split_from_listing
from kdbench.util.names import SPLITS

FOLDER = "tiny-imagenet-200"
SHAPE = Shape(64, None, "Tiny-ImageNet")
CLASSES = 200
SIZES = {"train": 100_000, "test": 10_000}


def dataset_folder(root: Path) -> Path:
    """Where the release is: `<root>/tiny-imagenet-200/` or `<root>` itself; the first missing
    piece named when neither holds it."""
    for folder in (root / FOLDER, root):
        if (folder / "wnids.txt").is_file():
            return folder
    state = "" if root.is_dir() else " (that folder does not exist)"
    raise DataError(
        f"no Tiny-ImageNet under data root {root}{state}: missing {root / FOLDER / 'wnids.txt'} (nor "
        f"{root / 'wnids.txt'}). Expected the released layout: wnids.txt, train/<wnid>/images/*.JPEG, "
        "val/val_annotations.txt and val/images/*.JPEG (unzip tiny-imagenet-200.zip into the data root)"
    )


def read_wnids(folder: Path) -> list[str]:
    """The class ids, sorted (the label order), each named once."""
    path = folder / "wnids.txt"
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    wnids = [w for w in lines if w]
    if not wnids:
        raise DataError(f"{path}: names no class; expected one WordNet id (n01443537) per line")
    twice = sorted({w for w in wnids if wnids.count(w) > 1})
    if twice:
        raise DataError(f"{path}: class {twice[0]} is listed twice")
    return sorted(wnids)


def _image_names(folder: Path) -> list[str]:
    try:
        return sorted(n for n in os.listdir(folder) if n.lower().endswith(IMG_EXTENSIONS))
    except OSError as exc:
        raise DataError(f"{folder}: cannot list ({exc})") from None


def list_train(folder: Path, wnids: list[str]) -> Listing:
    listing = Listing(folder / "train", wnids, [], [], [], [], [], SHAPE)
    for label, wnid in enumerate(wnids):
        images = folder / "train" / wnid / "images"
        if not images.is_dir():
            raise DataError(f"{images}: missing; wnids.txt names class {wnid}, whose training images belong there")
        names = _image_names(images)
        if not names:
            raise DataError(f"{images}: holds no images (looked for {', '.join(IMG_EXTENSIONS)})")
        for name in names:
            listing.add(str(images / name), f"{wnid}/images/{name}", label)
    return listing


def list_val(folder: Path, wnids: list[str]) -> Listing:
    """The validation images in the annotation file's order, labelled by it."""
    notes = folder / "val" / "val_annotations.txt"
    images = folder / "val" / "images"
    for needed in (notes, images):
        if not needed.exists():
            raise DataError(f"{needed}: missing; the released val/ holds val_annotations.txt and images/")
    label_of = {w: i for i, w in enumerate(wnids)}
    listing = Listing(folder / "val", wnids, [], [], [], [], [], SHAPE)
    try:
        lines = notes.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{notes}: cannot read ({exc})") from None
    seen = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataError(f"{notes}, line {number}: expected '<file>\\t<wnid>\\t...', found {line[:80]!r}")
        name, wnid = parts[0].strip(), parts[1].strip()
        if wnid not in label_of:
            raise DataError(f"{notes}, line {number}: class {wnid} is not in wnids.txt (its {len(wnids)} classes)")
        if name in seen:
            raise DataError(f"{notes}, line {number}: {name} is labelled twice")
        seen.add(name)
        listing.add(
            str(images / name),
            f"images/{name}",
            label_of[wnid],
            f"missing; {notes.name} line {number} labels it {wnid}",
        )
    if not listing.paths:
        raise DataError(f"{notes}: labels no image")
    return listing


@register_dataset("tinyimagenet")
def tinyimagenet(root: Path, splits, *, download: bool = False):
    """Tiny-ImageNet-200 in its released layout (64x64, 200 classes; test = the released val)."""
    folder = dataset_folder(Path(root))
    wnids = read_wnids(folder)
    listers = {"train": list_train, "test": list_val}
    out, digests = {}, {}
    for split in SPLITS:
        listing = listers[split](folder, wnids)
        images, digests[split] = split_from_listing(listing, split in splits, "tinyimagenet")
        if split in splits:
            out[split] = listing.data(images)
    key = "".join(f"{s}\t{digests[s]}\n" for s in SPLITS)
    return out, wnids, "tinyimagenet:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def check_params(params: dict, train_subset=None, test_subset=None) -> None:
    if params:
        raise DataError(f"tinyimagenet dataset: unknown parameter(s) {sorted(params)}; it takes none")
    for split, subset in (("train", train_subset), ("test", test_subset)):
        if subset is not None and subset > SIZES[split]:
            raise DataError(f"{split}_subset {subset} is larger than Tiny-ImageNet's {split} split ({SIZES[split]:,})")


tinyimagenet.check_params = check_params
tinyimagenet.released_c = "Tiny-ImageNet-C"  # evaluate.corruptions with source: files reads it
tinyimagenet.train_size = lambda params: SIZES["train"]
tinyimagenet.num_classes = lambda params: CLASSES
tinyimagenet.image_size = lambda params: SHAPE.side
