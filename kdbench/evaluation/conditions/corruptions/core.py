"""What a corruption is, and how a batch gets corrupted.

A corruption is its name, family, the parameters of severities 1..5 (make_cifar_c.py's, for
32x32 images), the random numbers each image needs (`draws`), and a batched `apply`:

    apply(levels, params, draws) -> uint8 (B, 3, 32, 32)

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

The reference generator was never seeded: regenerated data follows CIFAR-10-C's distribution
(same steps, same parameters), not the released bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

from kdbench.util.lazy import lazy

torch = lazy("torch")


# Part of every cache key and export manifest: bump when any corruption's output changes.
GENERATOR_VERSION = 1
SIZE = 32
SEVERITIES = (1, 2, 3, 4, 5)


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
    params: tuple  # severity s uses params[s - 1]
    apply: Callable[[torch.Tensor, Any, dict], torch.Tensor]
    draws: Callable[[Any], tuple[Draw, ...]] = field(default=lambda c: ())
    doc: str = ""

    @property
    def __wrapped__(self):  # where it was defined, for the registry
        return self.apply

    def params_of(self, severity: int):
        check_severity(severity)
        return self.params[int(severity) - 1]


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


def draw_batch(corruption: Corruption, severity: int, indices, seed: int) -> dict[str, torch.Tensor]:
    """This batch's random numbers, one row per image, on the CPU (generators are CPU ones so the
    numbers do not depend on the device)."""
    specs = corruption.draws(corruption.params_of(severity))
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
    if images.shape[-2:] != (SIZE, SIZE):
        raise ValueError(f"CIFAR-10-C's parameters are for 32x32 images, got {tuple(images.shape[-2:])}")
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
