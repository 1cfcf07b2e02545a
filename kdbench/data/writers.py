"""Writing a dataset in CIFAR's two layouts, torchvision's pickles or an ImageFolder: for test
fixtures, demos and the compact copy of CIFAR-10 that travels to a GPU machine."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from kdbench.data.cifar import CIFAR10, Release
from kdbench.data.tensors import Splits
from kdbench.util.atomic import atomic_path


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
        dump(
            name,
            {
                "batch_label": name,
                release.label_key: [int(v) for v in labels],
                "data": data,
                "filenames": [f"{name}_{i:05d}.png" for i in range(len(images))],
            },
        )
    return folder


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


def write_tinyimagenet(root: str | Path, splits: Splits, ext: str = "png") -> Path:
    """Write `splits` in Tiny-ImageNet's released layout under `root`/tiny-imagenet-200 (classes
    as its wnids, the test split as val/ with val_annotations.txt); returns that folder. Training
    files are numbered per class, validation files in split order, so both load back in order."""
    folder = Path(root) / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("".join(f"{c}\n" for c in splits.classes))
    counters = [0] * len(splits.classes)
    for img, label in zip(splits.train.images, splits.train.labels.tolist()):
        wnid = splits.classes[label]
        (folder / "train" / wnid / "images").mkdir(parents=True, exist_ok=True)
        path = folder / "train" / wnid / "images" / f"{wnid}_{counters[label]}.{ext}"
        counters[label] += 1
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(path)
    notes = []
    width = max(4, len(str(len(splits.test))))
    for i, (img, label) in enumerate(zip(splits.test.images, splits.test.labels.tolist())):
        name = f"val_{i:0{width}d}.{ext}"
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / "val" / "images" / name)
        notes.append(f"{name}\t{splits.classes[label]}\t0\t0\t63\t63\n")
    (folder / "val" / "val_annotations.txt").write_text("".join(notes))
    return folder
