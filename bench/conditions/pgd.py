from __future__ import annotations

import torchattacks
from pydantic import Field

from . import CONDITIONS
from .attack import Attack, AttackParams
from ..levels import PixelValue


class PGDParams(AttackParams):
    steps: int = Field(10, ge=1)
    step_size: PixelValue | None = Field(
        None, description="absolute step in [0, 1] pixel units; default 2.5 * eps / steps (Madry et al.)"
    )
    random_start: bool = True
    restarts: int = Field(1, ge=1, description="an example counts as robust only if it survives every restart")


@CONDITIONS.register("pgd")
class PGD(Attack):
    """Linf projected gradient descent (Madry et al., 2018) through torchattacks.PGD."""

    name = "pgd"
    Params = PGDParams

    @property
    def restarts(self):
        return self.params.restarts

    def make(self, model, eps):
        p = self.params
        alpha = p.step_size if p.step_size is not None else 2.5 * eps / p.steps
        return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=p.steps, random_start=p.random_start)
