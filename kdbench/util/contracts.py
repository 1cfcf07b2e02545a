"""What a network, a method's step and a condition must return, checked once per job on its first
batch (a few comparisons, nothing measurable): a plugin that breaks the contract stops its job
with a sentence naming the code's file and line and what was wrong, instead of a traceback from
deep inside the loss, or numbers scored silently on the wrong thing."""

from __future__ import annotations

import inspect

from kdbench.util.errors import CodeFailed


def located(obj) -> str:
    """Where `obj` is defined: "plugin.py, line 30" (a partial's or a wrapper's function), or its
    module when the source cannot be found."""
    inner = getattr(obj, "func", None) or getattr(obj, "__wrapped__", None) or obj
    if not (inspect.isclass(inner) or inspect.isfunction(inner) or inspect.ismethod(inner)):
        inner = type(inner)
    try:
        return f"{inspect.getsourcefile(inner)}, line {inspect.getsourcelines(inner)[1]}"
    except (OSError, TypeError):
        return getattr(inner, "__module__", "?")


def check_logits(z, batch: int, num_classes: int | None, what: str, code) -> None:
    """A network's outputs on a batch: a floating tensor of shape (batch, num_classes); any number
    of classes when `num_classes` is None (where the caller does not know the data's)."""
    import torch

    if not isinstance(z, torch.Tensor):
        raise CodeFailed(f"{what} ({located(code)}) returned {type(z).__name__}, expected a tensor of logits")
    if z.dim() != 2 or z.shape[0] != batch or num_classes not in (None, z.shape[1]):
        expected = f"({batch}, classes)"
        if num_classes is not None:
            expected = (
                f"({batch}, {num_classes}): the data has {num_classes} classes (a factory must use its num_classes)"
            )
        shape = tuple(z.shape)
        raise CodeFailed(
            f"{what} ({located(code)}) returned logits of shape {shape} for {batch} images, expected {expected}"
        )
    if not z.is_floating_point():
        raise CodeFailed(f"{what} ({located(code)}) returned {z.dtype} logits, expected floating point")


def check_losses(losses, what: str, code) -> None:
    """A method's step: a dict of named losses, each a 0-dim floating tensor."""
    import torch

    if not isinstance(losses, dict) or not losses:
        raise CodeFailed(
            f"{what} ({located(code)}) returned {type(losses).__name__}, expected a dict of named loss tensors"
        )
    for name, value in losses.items():
        if not isinstance(value, torch.Tensor):
            raise CodeFailed(
                f"{what} ({located(code)}): loss {name!r} is a {type(value).__name__}, expected a 0-dim tensor "
                "(a Python number carries no gradient: compute it with torch)"
            )
        if value.dim() != 0 or not value.is_floating_point():
            raise CodeFailed(
                f"{what} ({located(code)}): loss {name!r} is a {value.dtype} tensor of shape {tuple(value.shape)}, "
                "expected a floating 0-dim tensor (reduce it: .mean() or .sum())"
            )


def check_images(out, x, what: str, code) -> None:
    """A condition's images: a floating tensor shaped as its input, within [0, 1]."""
    import torch

    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CodeFailed(f"{what} ({located(code)}) returned {shape} for images of shape {tuple(x.shape)}")
    if not out.is_floating_point():
        raise CodeFailed(f"{what} ({located(code)}) returned {out.dtype} images, expected floating point in [0, 1]")
    lo, hi = float(out.min()), float(out.max())
    if not (0.0 <= lo and hi <= 1.0):  # NaN fails too
        raise CodeFailed(
            f"{what} ({located(code)}) returned images in [{lo:.4g}, {hi:.4g}], expected [0, 1] "
            "(every model takes images in [0, 1]: clamp them)"
        )
