"""What a corruption is, and how a batch gets corrupted.

A corruption is its name, family, the parameters of severities 1..5 in each of the reference's
three sets (`PARAMETER_SETS`: make_cifar_c.py's for 32x32 images, make_tinyimagenet_c.py's for
64x64, make_imagenet_c.py's for 224x224), the random numbers each image needs (`draws`, for a
parameter tuple and the image side), and a batched `apply`:

    apply(levels, params, draws) -> uint8 (B, 3, S, S)

Square images of any side from `MIN_SIDE` take the set nearest their side on a log scale (so 96
px takes the 64-px set and 128 px the 224-px one, whose arithmetic then runs at 96 or 128 px).

`levels` are the clean images as float32 integer levels 0..255 on the run's device; `draws`
are this batch's random numbers, one row per image, on the same device. Output is uint8 by
truncation, as the reference's np.uint8(...) is.

Reproducibility: image i's numbers come from its own CPU generator seeded with
kdbench.util.seeding.derive_seed(seed, name, severity, i), drawn in the order `draws` lists them, so
they do not depend on the batch, the image's position in it, the device or which other
corruptions run; the arithmetic is exact or elementwise in a fixed order (kernels.py), so the
bytes do not depend on the batch either (tested). Across devices the draws are identical;
two steps may round differently on a GPU (contrast's running mean, elastic's BLAS smoothing),
which can move a rare pixel by one level (checked on CPU only so far). Normal draws come from
torch's vectorised Box-Muller, so other CPU architectures may differ in the last bit.

The reference generator was never seeded: regenerated data follows the released sets'
distribution (same steps, same parameters), not their bytes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from kdbench.util.lazy import lazy

torch = lazy("torch")


# Part of every cache key and export manifest: bump when any corruption's output changes.
GENERATOR_VERSION = 1
SEVERITIES = (1, 2, 3, 4, 5)
# The reference's parameter sets, by the image side they were made for.
PARAMETER_SETS = {
    32: "CIFAR-10-C (make_cifar_c.py, 32 px)",
    64: "Tiny-ImageNet-C (make_tinyimagenet_c.py, 64 px)",
    224: "ImageNet-C (make_imagenet_c.py, 224 px)",
}
MIN_SIDE = 16  # below it the largest glass-blur moves and pixelate's smallest sizes are meaningless


def parameter_set(side: int) -> int:
    """The reference size whose parameters an image of `side` pixels takes: the nearest by ratio
    (ties to the smaller set)."""
    return min(PARAMETER_SETS, key=lambda ref: (abs(math.log(side / ref)), ref))


def describe_set(side: int) -> str:
    """For reports: which parameters a run at `side` pixels used, and why."""
    ref = parameter_set(side)
    return PARAMETER_SETS[ref] + ("" if ref == side else f", the nearest set to {side} px")


@dataclass(frozen=True)
class Draw:
    """One block of an image's random numbers: uniform in [0, 1) or standard normal."""

    name: str
    shape: tuple[int, ...]
    kind: str = "uniform"  # uniform | normal
    dtype: str = "float64"  # a torch dtype's name


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str  # noise | blur | weather | digital
    params: dict  # {reference side: 5 tuples}; severity s uses params[set][s - 1]
    apply: Callable[[torch.Tensor, Any, dict], torch.Tensor]
    draws: Callable[[Any, int], tuple[Draw, ...]] = field(default=lambda c, side: ())
    doc: str = ""

    @property
    def __wrapped__(self):  # where it was defined, for the registry
        return self.apply

    def params_of(self, severity: int, side: int = 32):
        check_severity(severity)
        return self.params[parameter_set(side)][int(severity) - 1]


def check_severity(severity) -> int:
    if isinstance(severity, bool) or int(severity) != severity or int(severity) not in SEVERITIES:
        raise ValueError(f"severity must be one of 1..5, got {severity!r}")
    return int(severity)


# ------------------------------------------------------------------------------------ seeding
class _SeedPrefix:
    """derive_seed(seed, name, severity, i) for many i, hashing the shared prefix once.

    derive_seed hashes "\\x1f".join(repr(p)) with sha256; hashing is streaming, so copying the
    hasher after the prefix and feeding repr(i) gives the identical seed (a test checks)."""

    def __init__(self, *parts):
        text = "".join((p if isinstance(p, str) else repr(p)) + "\x1f" for p in parts)
        self._h = hashlib.sha256(text.encode())

    def seed(self, index: int) -> int:
        h = self._h.copy()
        h.update(repr(int(index)).encode())
        return int.from_bytes(h.digest()[:8], "little") >> 1


def draw_batch(corruption: Corruption, severity: int, indices, seed: int, side: int = 32) -> dict[str, torch.Tensor]:
    """This batch's random numbers for images of `side` pixels, one row per image, on the CPU
    (generators are CPU ones so the numbers do not depend on the device)."""
    specs = corruption.draws(corruption.params_of(severity, side), side)
    if not specs:
        return {}
    idx = [int(i) for i in (indices.tolist() if hasattr(indices, "tolist") else indices)]
    out = {d.name: torch.empty((len(idx), *d.shape), dtype=getattr(torch, d.dtype)) for d in specs}
    prefix = _SeedPrefix(int(seed), corruption.name, int(severity))
    g = torch.Generator()  # re-seeded per image: the same stream as a fresh generator (tested)
    for row, i in enumerate(idx):
        g.manual_seed(prefix.seed(i))
        for d in specs:
            fill = torch.rand if d.kind == "uniform" else torch.randn
            fill(d.shape, generator=g, dtype=getattr(torch, d.dtype), out=out[d.name][row])
    return out


# ------------------------------------------------------------------------------------ levels
def as_levels(images: torch.Tensor) -> torch.Tensor:
    """float32 integer levels 0..255 from uint8 images or float images in [0, 1] (k/255 values)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    if h != w or h < MIN_SIDE:
        raise ValueError(f"corruptions need square images of at least {MIN_SIDE} px, got {h}x{w}")
    if images.dtype == torch.uint8:
        return images.float()
    return torch.round(images.float() * 255.0).clamp_(0, 255)


def to_uint8(values01: torch.Tensor) -> torch.Tensor:
    """np.uint8(np.clip(v, 0, 1) * 255): truncation, not rounding (the cast truncates; values
    are non-negative after the clip). Works in place on `values01`."""
    return values01.clamp_(0, 1).mul_(255).to(torch.uint8)


def levels_to_uint8(levels: torch.Tensor) -> torch.Tensor:
    """np.uint8(np.clip(v, 0, 255)) for values already in levels."""
    return torch.clamp(levels, 0, 255).to(torch.uint8)  # the cast truncates
