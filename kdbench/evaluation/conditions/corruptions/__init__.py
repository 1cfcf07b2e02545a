"""CIFAR-10-C's 19 corruptions (Hendrycks & Dietterich, 2019), batched in torch.

Faithful to make_cifar_c.py in hendrycks/robustness (the 32x32 parameters, not ImageNet-C's),
seeded per image, and runnable on any device. `corrupt(name, images, indices, severity, seed)`
gives uint8 images; the `corruptions` evaluation condition wraps it for suites, and
`kdbench.data.cifar10c` reads the released files instead.

A new corruption is one decorated function in a family module:

    @corruption("my_blur", "blur", params=[...5 severities...], draws=lambda c: (Draw(...),))
    def my_blur(levels, c, d): ...
"""

from __future__ import annotations

from kdbench.evaluation.conditions.corruptions.core import (
    GENERATOR_VERSION,
    SEVERITIES,
    Corruption,
    Draw,
    as_levels,
    check_severity,
    draw_batch,
)
from kdbench.registry import Registry
from kdbench.util.names import BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS

CORRUPTIONS: Registry[Corruption] = Registry("corruption")

BENCHMARK, EXTRA = BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS
ALL = BENCHMARK + EXTRA


def corruption(name: str, family: str, params, draws=None):
    """Register `fn(levels, c, draws) -> uint8` as corruption `name` with per-severity `params`."""
    params = tuple(params)
    if len(params) != len(SEVERITIES):
        raise ValueError(f"{name}: need parameters for the {len(SEVERITIES)} severities")

    def deco(fn):
        CORRUPTIONS.register(name)(
            Corruption(name, family, params, fn, draws or (lambda c: ()), (fn.__doc__ or "").strip())
        )
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


# The family modules register their corruptions when first used; the `corruptions` condition
# (condition.py) registers in CONDITIONS.
CORRUPTIONS.declare_from_sources(__name__, __path__, "corruption")

missing = set(ALL) - set(CORRUPTIONS.names())
if missing:  # a family module lost a corruption
    raise ImportError(f"corruptions not registered: {sorted(missing)}")

__all__ = [
    "ALL",
    "BENCHMARK",
    "CORRUPTIONS",
    "Corruption",
    "Draw",
    "EXTRA",
    "GENERATOR_VERSION",
    "corrupt",
    "corruption",
    "draw_batch",
    "resolve_names",
]
