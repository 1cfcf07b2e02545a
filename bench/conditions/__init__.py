"""Evaluation conditions, found by the names the suite uses (`clean`, `gaussian_noise`, `fgsm`, ...)."""

from ..registry import Registry
from .base import Condition, Params

CONDITIONS: Registry[type[Condition]] = Registry("condition")

# Importing the modules registers them; a new condition is one new module listed here.
from . import clean, gaussian_noise  # noqa: E402,F401
from . import fgsm, pgd, cw, apgd, apgd_t, square, autoattack, transfer, robust  # noqa: E402,F401
from . import corruptions  # noqa: E402,F401  (the CIFAR-10-C family, a package of its own)

__all__ = ["CONDITIONS", "Condition", "Params"]
