"""What a loaded dataset is: uint8 image tensors held in memory, with labels and canonical positions.

CIFAR-sized data fits in memory many times over, and training loops that index tensors
directly are faster and easier to make deterministic than a DataLoader over files.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.util.lazy import lazy

torch = lazy("torch")


@dataclass(eq=False)
class TensorData:
    """One split. `images` uint8 (N, 3, H, W) (32x32 for the formats here), `labels` int64 (N,),
    `indices` int64 (N,): each example's position in the split's canonical order, kept through
    `subset` so per-image seeds and released per-image files line up whichever subset is used;
    `names`, where the split was read from files, each image's file relative to the split's folder
    (how a released corrupted copy of it is found)."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    names: list[str] | None = None

    def __post_init__(self) -> None:
        im, lb, ix = self.images, self.labels, self.indices
        if im.dtype != torch.uint8 or im.dim() != 4 or im.shape[1] != 3:
            raise ValueError(f"images must be uint8 (N, 3, H, W); got {im.dtype} {tuple(im.shape)}")
        n = im.shape[0]
        for name, t in (("labels", lb), ("indices", ix)):
            if t.dtype != torch.int64 or tuple(t.shape) != (n,):
                raise ValueError(f"{name} must be int64 ({n},) to match images; got {t.dtype} {tuple(t.shape)}")
        if self.names is not None and len(self.names) != n:
            raise ValueError(f"names must name the {n} images; got {len(self.names)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, positions) -> "TensorData":
        """The examples at `positions` (positions in this TensorData, not canonical indices)."""
        pos = torch.as_tensor(positions, dtype=torch.int64)
        names = None if self.names is None else [self.names[i] for i in pos.tolist()]
        return TensorData(self.images[pos], self.labels[pos], self.indices[pos], names)


@dataclass(eq=False)
class Splits:
    """A dataset's train and test splits. `identity` is a short string naming the content (format
    plus a fingerprint of the files or generator parameters, plus any subset taken): it goes into
    content hashes, so it changes when the data changes and is the same on every machine that
    holds the same files (no absolute paths, no mtimes)."""

    train: TensorData
    test: TensorData
    classes: list[str]
    identity: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)
