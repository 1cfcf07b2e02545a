from __future__ import annotations

import torchattacks
from pydantic import Field, model_validator

from . import CONDITIONS
from .attack import AttackParams, TorchattacksAttack
from ..levels import PixelValue


class PGDParams(AttackParams):
    steps: int = Field(10, ge=1)
    step_size: PixelValue | None = Field(
        None, gt=0, description="absolute step in [0, 1] pixel units; default 2.5 * eps / steps (Madry et al.)"
    )
    random_start: bool = True
    restarts: int = Field(1, ge=1, description="an example counts as robust only if it survives every restart")

    @model_validator(mode="after")
    def _restarts_need_random_start(self):
        if self.restarts > 1 and not self.random_start:
            raise ValueError("restarts > 1 without random_start repeats the same attack; set random_start: true")
        return self

    def alpha(self, eps: float) -> float:
        return self.step_size if self.step_size is not None else 2.5 * eps / self.steps


@CONDITIONS.register("pgd")
class PGD(TorchattacksAttack):
    """Linf projected gradient descent on cross-entropy (Madry et al., 2018) through torchattacks.PGD."""

    name = "pgd"
    kind = "ce"
    Params = PGDParams

    def make(self, model, eps):
        p = self.params
        return torchattacks.PGD(model, eps=eps, alpha=p.alpha(eps), steps=p.steps, random_start=p.random_start)
