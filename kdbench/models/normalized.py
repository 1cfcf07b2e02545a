"""The [0,1]-input wrapper that owns per-channel normalisation for every kdbench model."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from kdbench.registry import UnknownName

Stats = tuple[Sequence[float], Sequence[float]]

# Per-channel statistics of the 50k CIFAR-10 training images (std over all pixels, not the
# (0.2023, 0.1994, 0.2010) per-image figure some repos copy). "none" is for networks trained on raw [0,1].
NORMALIZATIONS: dict[str, Stats | None] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    # RepDistiller's and mdistiller's figures, so that their published CIFAR-100 checkpoints load as trained
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    # torchvision's ImageNet figures, which its pretrained networks expect; Tiny-ImageNet work uses them too
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "none": None,
}


class Normalized(nn.Module):
    """`net((x - mean) / std)` for x in [0,1]; `mean=None` passes x through unchanged."""

    def __init__(self, net: nn.Module, mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        super().__init__()
        if isinstance(net, Normalized):
            raise TypeError("net is already Normalized; wrapping twice would normalise twice")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.net = net
        if mean is None:
            self.mean = self.std = None
        else:
            mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
            std_t = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
            if mean_t.shape != std_t.shape:
                raise ValueError(f"mean has {mean_t.numel()} channels but std has {std_t.numel()}")
            if (std_t <= 0).any():
                raise ValueError(f"std must be positive, got {tuple(std_t.flatten().tolist())}")
            # Non-persistent: checkpoints of the wrapper stay those of the bare network (under `net.`),
            # and the statistics still follow .to(device) / .half().
            self.register_buffer("mean", mean_t, persistent=False)
            self.register_buffer("std", std_t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return self.net(x)

    def extra_repr(self) -> str:
        if self.mean is None:
            return "identity"
        return (
            f"mean={tuple(round(v, 4) for v in self.mean.flatten().tolist())}, "
            f"std={tuple(round(v, 4) for v in self.std.flatten().tolist())}"
        )


def wrap(net: nn.Module, normalize: str | Stats | None) -> Normalized:
    """`Normalized(net, ...)` from a NORMALIZATIONS name, a (mean, std) pair, or None for identity."""
    if isinstance(normalize, str):
        if normalize not in NORMALIZATIONS:
            raise UnknownName("normalization", normalize, NORMALIZATIONS)
        normalize = NORMALIZATIONS[normalize]
    if normalize is None:
        return Normalized(net)
    mean, std = normalize
    return Normalized(net, mean, std)
