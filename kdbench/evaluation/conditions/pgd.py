from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.attack import Attack, AttackParams, pgd_steps
from kdbench.util.budgets import RESTARTS, STEPS
from kdbench.util.lazy import lazy
from kdbench.util.levels import PixelValue

F = lazy("torch.nn.functional")


class PGDParams(AttackParams):
    steps: Annotated[int, STEPS] = Field(10, ge=1)
    step_size: PixelValue | None = Field(
        None, gt=0, description="absolute step in [0, 1] pixel units; default 2.5 * eps / steps (Madry et al.)"
    )
    random_start: bool = True
    restarts: Annotated[int, RESTARTS] = Field(
        1, ge=1, description="an example counts as robust only if it survives every restart"
    )

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
    """Linf projected gradient descent on cross-entropy (Madry et al., 2018).

    The same steps as torchattacks.PGD (checked against it from a common start); the random start
    is drawn per example, so the result does not depend on the batch size."""

    name = "pgd"
    kind = "ce"
    Params = PGDParams
    loss = staticmethod(cross_entropy)

    def run_once(self, model, x, y, eps, start):
        p = self.params
        return pgd_steps(model, x, y, eps, p.alpha(eps), p.steps, self.loss, start(x) if p.random_start else None)
