"""CIFAR-10-C's 19 corruptions (Hendrycks & Dietterich, 2019), batched in torch.

Faithful to make_cifar_c.py in hendrycks/robustness (the 32x32 parameters, not ImageNet-C's),
seeded per image, and runnable on any device. `corrupt(name, images, indices, severity, seed)`
gives uint8 images; the `corruptions` evaluation condition wraps it for suites, and
`bench.data.cifar10c` reads the released files instead.

A new corruption is one decorated function in a family module:

    @corruption("my_blur", "blur", params=[...5 severities...], draws=lambda c: (Draw(...),))
    def my_blur(levels, c, d): ...
"""

from __future__ import annotations

from ...registry import Registry
from .core import GENERATOR_VERSION, SEVERITIES, Corruption, Draw, as_levels, check_severity, draw_batch

CORRUPTIONS: Registry[Corruption] = Registry("corruption")

# The benchmark's 15 (the mean corruption accuracy and mCE average these) and the 4 extras,
# in the order of the reference generator.
BENCHMARK = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = BENCHMARK + EXTRA


def corruption(name: str, family: str, params, draws=None):
    """Register `fn(levels, c, draws) -> uint8` as corruption `name` with per-severity `params`."""
    params = tuple(params)
    if len(params) != len(SEVERITIES):
        raise ValueError(f"{name}: need parameters for the {len(SEVERITIES)} severities")

    def deco(fn):
        CORRUPTIONS.register(name)(Corruption(name, family, params, fn, draws or (lambda c: ()), (fn.__doc__ or "").strip()))
        return fn

    return deco


def resolve_names(names) -> list[str]:
    """'all' (the 19), 'benchmark' (the 15) or a list of names, checked against the registry."""
    if isinstance(names, str):
        if names == "all":
            return list(ALL)
        if names == "benchmark":
            return list(BENCHMARK)
        names = [names]
    out = []
    for n in names:
        CORRUPTIONS.get(n)  # raises UnknownName with a did-you-mean
        if n not in out:
            out.append(n)
    return out


def corrupt(name: str, images, indices, severity: int, seed: int = 0, *, draws: dict | None = None):
    """Images (B, 3, 32, 32), uint8 or float in [0, 1], corrupted as uint8 on their device.

    `indices` are the images' positions in their split (they seed the per-image generators);
    `draws` replaces the generated random numbers (tests use it to compare with a plain
    per-image computation on the same numbers)."""
    c = CORRUPTIONS.get(name)
    severity = check_severity(severity)
    levels = as_levels(images)
    if draws is None:
        draws = draw_batch(c, severity, indices, seed)
    d = {k: v.to(levels.device) for k, v in draws.items()}
    return c.apply(levels, c.params_of(severity), d)


# Importing the family modules registers them; the condition then registers in CONDITIONS.
from . import blur, digital, noise, weather  # noqa: E402,F401
from . import condition  # noqa: E402,F401

missing = set(ALL) - set(CORRUPTIONS.names())
if missing:  # pragma: no cover - a family module lost a corruption
    raise ImportError(f"corruptions not registered: {sorted(missing)}")

__all__ = ["ALL", "BENCHMARK", "CORRUPTIONS", "Corruption", "Draw", "EXTRA", "GENERATOR_VERSION", "corrupt",
           "corruption", "draw_batch", "resolve_names"]
