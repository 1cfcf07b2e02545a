from __future__ import annotations

from . import CONDITIONS
from .base import Condition


@CONDITIONS.register("clean")
class Clean(Condition):
    """The test images as they are; always scored (agreement and the robust convention need it)."""

    name = "clean"
    group = "clean"

    def perturb(self, x, y, indices, level):
        return x
