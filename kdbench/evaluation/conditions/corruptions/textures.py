"""The frost textures as each parameter set uses them (0.2 of their size: CIFAR-10-C's, 0.3:
Tiny-ImageNet-C's, 1: ImageNet-C's; stored already resized, see frost/NOTICE): their sizes, read
from the PNG headers so that `validate` needs no torch, and the bank `frost` crops from."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

from kdbench.util.lazy import lazy

torch = lazy("torch")

TEXTURES = Path(__file__).with_name("frost")
COUNT = 5  # the reference draws np.random.randint(5): frost1 .. frost5


def files(scale: float) -> list[Path]:
    folder = TEXTURES if scale == 0.2 else TEXTURES / f"scale{scale:g}"
    return [folder / f"frost{i}.png" for i in range(1, COUNT + 1)]


@functools.lru_cache(maxsize=None)
def sizes(scale: float) -> tuple[tuple[int, int], ...]:
    """(height, width) of each texture."""
    out = []
    for path in files(scale):
        with Image.open(path) as im:  # reads the header only
            out.append((im.height, im.width))
    return tuple(out)


def largest_crop(scale: float) -> int:
    """The largest side frost can crop from every texture: the reference draws the corner with
    randint(0, h - side), which needs h > side."""
    return min(min(hw) for hw in sizes(scale)) - 1


@functools.lru_cache(maxsize=None)
def bank(scale: float, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The textures padded into one uint8 tensor (5, H, W, 3) RGB, and their (height, width)."""
    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in files(scale)]
    h = max(a.shape[0] for a in arrays)
    w = max(a.shape[1] for a in arrays)
    out = np.zeros((len(arrays), h, w, 3), dtype=np.uint8)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0], : a.shape[1]] = a
    return torch.tensor(out, device=device), torch.tensor(sizes(scale), dtype=torch.int64, device=device)
