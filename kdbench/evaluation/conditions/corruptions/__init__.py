"""The 19 corruptions of CIFAR-10-C, Tiny-ImageNet-C and ImageNet-C (Hendrycks & Dietterich,
2019), batched in torch.

Faithful to make_cifar_c.py, make_tinyimagenet_c.py and make_imagenet_c.py in
hendrycks/robustness, each with its own parameters (core.PARAMETER_SETS: 32, 64 and 224 px; other
sides take the nearest), seeded per image, and runnable on any device. `corrupt(name, images, indices, severity, seed)`
gives uint8 images; the `corruptions` evaluation condition wraps it for suites, and
`kdbench.data.cifar10c` reads the released files instead.

A new corruption is one decorated function in a family module:

    @corruption("my_blur", "blur", {32: [...5 severities...], 64: [...], 224: [...]},
                draws=lambda c, side: (Draw(...),))
    def my_blur(levels, c, d): ...
"""

from __future__ import annotations

from kdbench.evaluation.conditions.corruptions.core import (
    GENERATOR_VERSION,
    MIN_SIDE,
    PARAMETER_SETS,
    SEVERITIES,
    Corruption,
    Draw,
    as_levels,
    check_severity,
    describe_set,
    draw_batch,
    parameter_set,
)
from kdbench.registry import Registry
from kdbench.util.names import BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS

CORRUPTIONS: Registry[Corruption] = Registry("corruption")

BENCHMARK, EXTRA = BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS
ALL = BENCHMARK + EXTRA


def corruption(name: str, family: str, params: dict, draws=None):
    """Register `fn(levels, c, draws) -> uint8` as corruption `name` with per-severity `params`
    for each reference size: {32: [5 tuples], 64: [...], 224: [...]}."""
    if set(params) != set(PARAMETER_SETS):
        raise ValueError(f"{name}: need parameters for the reference sizes {sorted(PARAMETER_SETS)}")
    params = {side: tuple(p) for side, p in params.items()}
    if any(len(p) != len(SEVERITIES) for p in params.values()):
        raise ValueError(f"{name}: need parameters for the {len(SEVERITIES)} severities")

    def deco(fn):
        CORRUPTIONS.register(name)(
            Corruption(name, family, params, fn, draws or (lambda c, side: ()), (fn.__doc__ or "").strip())
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


def side_problems(names, side: int) -> list[str]:
    """Why the corruptions `names` cannot be generated on square images of `side` pixels (empty
    when they can): too small, or larger than frost's textures at the parameter set's scale."""
    from kdbench.evaluation.conditions.corruptions import textures  # PIL, only when asked

    if side < MIN_SIDE:
        return [f"corruptions are generated on images of at least {MIN_SIDE}x{MIN_SIDE} pixels, not {side}x{side}"]
    problems = []
    if "frost" in names:
        scale = CORRUPTIONS.get("frost").params_of(1, side)[2]
        largest = textures.largest_crop(scale)
        if side > largest:
            others = [n for n in names if n != "frost"]
            problems.append(
                f"frost crops its textures (at {scale:g} of their size with the parameters of {describe_set(side)}), "
                f"so it generates images of at most {largest}x{largest} pixels, not {side}x{side}: leave frost out"
                + (f" (names: [{', '.join(others)}])" if others else "")
            )
    return problems


def corrupt(name: str, images, indices, severity: int, seed: int = 0, *, draws: dict | None = None):
    """Square images (B, 3, S, S), uint8 or float in [0, 1], corrupted as uint8 on their device
    with the parameters of the reference size nearest S (core.parameter_set).

    `indices` are the images' positions in their split (they seed the per-image generators);
    `draws` replaces the generated random numbers (tests use it to compare with a plain
    per-image computation on the same numbers)."""
    c = CORRUPTIONS.get(name)
    severity = check_severity(severity)
    levels = as_levels(images)
    side = int(levels.shape[-1])
    if draws is None:
        draws = draw_batch(c, severity, indices, seed, side)
    d = {k: v.to(levels.device) for k, v in draws.items()}
    return c.apply(levels, c.params_of(severity, side), d)


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
    "PARAMETER_SETS",
    "corrupt",
    "corruption",
    "describe_set",
    "draw_batch",
    "parameter_set",
    "resolve_names",
    "side_problems",
]
