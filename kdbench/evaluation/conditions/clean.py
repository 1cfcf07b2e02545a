from __future__ import annotations

from pydantic import field_validator

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.base import Condition, Params


class CleanParams(Params):
    @field_validator("n")
    @classmethod
    def _every_example(cls, v):
        if v is not None:
            raise ValueError(
                "clean is scored on every evaluated example (agreement and the robust convention need it): "
                "set evaluate.n for fewer examples, or n on the other conditions"
            )
        return v


@register_condition("clean")
class Clean(Condition):
    """The test images as they are; always scored (agreement and the robust convention need it)."""

    group = "clean"
    Params = CleanParams

    def perturb(self, x, y, indices, level):
        return x
