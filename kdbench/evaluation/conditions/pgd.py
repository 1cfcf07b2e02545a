from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.attack import Attack, AttackParams, pgd_steps
from kdbench.util.budgets import RESTARTS, STEPS
from kdbench.util.lazy import lazy
from kdbench.util.levels import Number, in_radius_units

F = lazy("torch.nn.functional")


class PGDParams(AttackParams):
    steps: Annotated[int, STEPS] = Field(10, ge=1)
    step_size: Number | None = Field(
        None, description="absolute step (> 0) in the norm's units; default 2.5 * eps / steps (Madry et al.)"
    )
    random_start: bool = True
    restarts: Annotated[int, RESTARTS] = Field(
        1, ge=1, description="an example counts as robust only if it survives every restart"
    )

    @field_validator("step_size")
    @classmethod
    def _step_in_range(cls, value, info: ValidationInfo):
        if value is not None and in_radius_units(value, info.data.get("norm", "Linf")) == 0:
            raise ValueError("a step of 0 never moves: give a positive step, or leave it out for 2.5 * eps / steps")
        return value

    @model_validator(mode="after")
    def _restarts_need_random_start(self):
        if self.restarts > 1 and not self.random_start:
            raise ValueError("restarts > 1 without random_start repeats the same attack; set random_start: true")
        return self

    def alpha(self, eps: float) -> float:
        return self.step_size if self.step_size is not None else 2.5 * eps / self.steps


def cross_entropy(logits, y):
    return F.cross_entropy(logits, y, reduction="none")


@register_condition("pgd")
class PGD(Attack):
    """Projected gradient descent on cross-entropy (Madry et al., 2018), Linf or L2.

    The same steps as torchattacks.PGD and PGDL2 (checked against them from a common start); the
    random start is drawn per example, so the result does not depend on the batch size."""

    kind = "ce"
    Params = PGDParams
    loss = staticmethod(cross_entropy)

    def run_once(self, model, x, y, eps, start):
        p = self.params
        first = start.in_ball(x) if p.random_start else None
        return pgd_steps(model, x, y, eps, p.alpha(eps), p.steps, self.loss, first, p.norm)
