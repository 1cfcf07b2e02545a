"""ImageNet (ILSVRC 2012) for evaluation: the validation set as an ImageFolder, `val/<wnid>/*.JPEG`,
resized to 256 (the shorter side) and centre-cropped to 224, as torchvision's and RobustBench's
ImageNet evaluations do.

Labels are the standard 1,000-class index (the wnids sorted; RobustBench's
`imagenet_class_to_id_map.json`), looked up per folder, so a val/ holding some classes only keeps
every image's standard label. `subset: robustbench` keeps RobustBench's fixed 5,000 validation
images (its `imagenet_test_image_ids.txt`), the set its ImageNet leaderboards use. The train split
is `train/<wnid>/*` with the same transform when that folder exists, else empty: models can then
only be loaded (`checkpoint:`), not trained. Decoded images are cached and memory-mapped
(50,000 images are 7.5 GB as uint8 at 224x224).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import torch

from kdbench.data import register_dataset
from kdbench.data.errors import DataError
from kdbench.data.imagefolder import IMG_EXTENSIONS, Listing, Shape, split_from_listing
from kdbench.data.tensors import TensorData
from kdbench.util.names import SPLITS

SHAPE = Shape(224, 256, "ImageNet")
CLASSES = 1000
SUBSETS = ("none", "robustbench")
FOLDERS = {"train": "train", "test": "val"}


def _robustbench_file(name: str) -> str:
    """A file of the installed robustbench's helper_files, read without importing robustbench
    (1.1.1 does not import as released)."""
    spec = importlib.util.find_spec("robustbench")  # finds the package without running its __init__
    try:
        if spec is None or not spec.submodule_search_locations:
            raise OSError("robustbench is not installed")
        return (Path(spec.submodule_search_locations[0]) / "helper_files" / name).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(
            f"imagenet: cannot read robustbench's helper_files/{name} ({exc}); pip install robustbench"
        ) from None


def standard_wnids() -> list[str]:
    """The 1,000 wnids in the standard label order."""
    mapping = json.loads(_robustbench_file("imagenet_class_to_id_map.json"))
    return sorted(mapping, key=mapping.get)


def robustbench_ids() -> list[str]:
    """RobustBench's 5,000 validation images, '<wnid>/<file>', in its order."""
    return [line.strip() for line in _robustbench_file("imagenet_test_image_ids.txt").splitlines() if line.strip()]


def list_folder(folder: Path, label_of: dict[str, int], keep: list[str] | None = None) -> Listing:
    """`folder`/<wnid>/* in ImageFolder's order (or the names in `keep`, in their order), with the
    standard labels; a class folder that is not an ImageNet class is named."""
    try:
        wnids = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot list ({exc}); expected {folder}/<wnid>/*.JPEG") from None
    strange = [w for w in wnids if w not in label_of]
    if strange:
        raise DataError(f"{folder / strange[0]}: not an ImageNet class (expected WordNet ids such as n01440764)")
    if not wnids:
        raise DataError(f"{folder}: no class folders; expected {folder}/<wnid>/*.JPEG")
    if keep is None:
        keep = [f"{w}/{n}" for w in wnids for n in sorted(os.listdir(folder / w)) if n.lower().endswith(IMG_EXTENSIONS)]
    listing = Listing(folder, sorted(label_of, key=label_of.get), [], [], [], [], [], SHAPE)
    for name in keep:
        listing.add(
            str(folder / name),
            name,
            label_of[name.split("/")[0]],
            "missing (named by RobustBench's 5,000-image subset)",
        )
    if not listing.paths:
        raise DataError(f"{folder}: holds no images (looked for {', '.join(IMG_EXTENSIONS)})")
    return listing


@register_dataset("imagenet")
def imagenet(root: Path, splits, *, download: bool = False, subset: str = "none"):
    """ImageNet's val/<wnid>/ as the test split, 256 then centre 224 (param: subset=none|robustbench)."""
    check_params({"subset": subset})
    root = Path(root)
    val = root / FOLDERS["test"]
    if not val.is_dir():
        state = "" if root.is_dir() else " (that folder does not exist)"
        raise DataError(f"no ImageNet under data root {root}{state}: missing {val}/; expected {val}/<wnid>/*.JPEG")
    wnids = standard_wnids()
    label_of = {w: i for i, w in enumerate(wnids)}
    out, digests = {}, {}
    for split in SPLITS:
        folder = root / FOLDERS[split]
        if split == "train" and not folder.is_dir():
            digests[split] = "absent"
            if split in splits:
                out[split] = TensorData(
                    torch.zeros((0, 3, SHAPE.side, SHAPE.side), dtype=torch.uint8),
                    torch.zeros(0, dtype=torch.int64),
                    torch.zeros(0, dtype=torch.int64),
                )
            continue
        keep = robustbench_ids() if split == "test" and subset == "robustbench" else None
        listing = list_folder(folder, label_of, keep)
        images, digests[split] = split_from_listing(listing, split in splits, "imagenet")
        if split in splits:
            out[split] = listing.data(images)
    key = "".join(f"{s}\t{digests[s]}\n" for s in SPLITS) + "".join(f"{v}\n" for v in SHAPE.key)
    return out, wnids, "imagenet:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def check_params(params: dict, train_subset=None, test_subset=None) -> None:
    unknown = sorted(set(params) - {"subset"})
    if unknown:
        raise DataError(f"imagenet dataset: unknown parameter(s) {unknown}; expected: subset")
    if params.get("subset", "none") not in SUBSETS:
        raise DataError(
            f"imagenet dataset: params.subset must be one of {', '.join(SUBSETS)}, found {params['subset']!r}"
        )


imagenet.check_params = check_params
imagenet.released_c = "ImageNet-C"  # evaluate.corruptions with source: files reads it
imagenet.num_classes = lambda params: CLASSES
imagenet.image_size = lambda params: SHAPE.side
