from __future__ import annotations

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.base import Condition


@register_condition("clean")
class Clean(Condition):
    """The test images as they are; always scored (agreement and the robust convention need it)."""

    name = "clean"
    group = "clean"

    def perturb(self, x, y, indices, level):
        return x
