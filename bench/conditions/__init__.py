"""Evaluation conditions, found by the names the suite uses (`clean`, `gaussian_noise`, `fgsm`, ...)."""

from ..registry import Registry
from .base import Condition, Params

CONDITIONS: Registry[type[Condition]] = Registry("condition")

# Importing the modules registers them; a new condition is one new module listed here.
from . import clean, gaussian_noise, fgsm, pgd  # noqa: E402,F401

try:  # the CIFAR-10-C family lives in its own package
    from . import corruptions  # noqa: E402,F401
except ImportError as exc:  # pragma: no cover - only while the package is being built
    if "corruptions" not in str(exc):
        raise

__all__ = ["CONDITIONS", "Condition", "Params"]
