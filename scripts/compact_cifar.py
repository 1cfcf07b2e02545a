"""A compact copy of CIFAR-10 for a machine that may receive only a few tens of MB (the lent GPU
machine takes 64 MiB in all): uint8 arrays in one xz-compressed .npy stream, made from any layout
kdbench reads, and unpacked there into torchvision's pickle layout, which kdbench reads as usual.

    python scripts/compact_cifar.py make --data-root ../shared/data/cifar10-jpeg --out .gpu --n-train 4000
    python scripts/compact_cifar.py unpack .gpu /tmp/cifar10        # then --data-root /tmp/cifar10

xz keeps about 73% of CIFAR-10's bytes (zlib 90%): the test split (10,000 images) is 22 MB, and
20k training images would not fit beside it, so `--n-train` defaults to 4,000 (a
class-stratified subset: enough for speed, where content does not matter). `--model` adds an
fp16 copy of a checkpoint's state dict (half the bytes; loaded back into fp32 weights).
"""

from __future__ import annotations

import argparse
import lzma
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FILE = "cifar10_compact.npy.xz"
KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def make(data_root: str, out: Path, n_train: int, n_test: int | None, model: str | None) -> None:
    from kdbench.data import load_dataset, resolve_root

    splits = load_dataset("cifar10", resolve_root(data_root), train_subset=n_train, test_subset=n_test)
    out.mkdir(parents=True, exist_ok=True)
    arrays = (splits.train.images, splits.train.labels, splits.test.images, splits.test.labels)
    tmp = out / (FILE + ".tmp")
    with lzma.open(tmp, "wb", preset=6) as fh:
        for a in arrays:
            np.save(fh, a.numpy().astype(np.uint8 if a.dim() == 4 else np.int64), allow_pickle=False)
    tmp.replace(out / FILE)
    print(
        f"{out / FILE}: {len(splits.train)} train + {len(splits.test)} test images, "
        f"{(out / FILE).stat().st_size / 1e6:.1f} MB"
    )
    if model:
        import torch

        from kdbench.models.checkpoint import load_state_dict_file
        from kdbench.models.teachers import resolve_checkpoint

        state = load_state_dict_file(resolve_checkpoint(model))
        half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        torch.save(half, out / "model_fp16.pt")
        print(f"{out / 'model_fp16.pt'}: {(out / 'model_fp16.pt').stat().st_size / 1e6:.1f} MB")


def unpack(src: Path, root: Path) -> None:
    import torch

    from kdbench.data.tensors import Splits, TensorData
    from kdbench.data.writers import write_cifar_pickles

    with lzma.open(src / FILE, "rb") as fh:
        arrays = dict(zip(KEYS, (np.load(fh, allow_pickle=False) for _ in KEYS)))

    def split(s):
        return TensorData(
            torch.from_numpy(arrays[f"{s}_images"]),
            torch.from_numpy(arrays[f"{s}_labels"]),
            torch.arange(len(arrays[f"{s}_labels"])),
        )

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    folder = write_cifar_pickles(root, Splits(split("train"), split("test"), classes, "compact"))
    print(f"{folder}: {len(arrays['train_images'])} train + {len(arrays['test_images'])} test images")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--data-root", required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--n-train", type=int, default=4000)
    m.add_argument("--n-test", type=int, default=None, help="default: the whole test split")
    m.add_argument("--model", help="a checkpoint (path or pkg:...) to add as fp16")
    u = sub.add_parser("unpack")
    u.add_argument("src", type=Path)
    u.add_argument("root", type=Path)
    args = ap.parse_args()
    if args.cmd == "make":
        make(args.data_root, args.out, args.n_train, args.n_test, args.model)
    else:
        unpack(args.src, args.root)


if __name__ == "__main__":
    main()
