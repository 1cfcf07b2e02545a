"""What FGSM and PGD share: Linf epsilons, a seeded torchattacks call, worst case over restarts."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, field_validator

from ..seeding import derive_seed
from .base import Condition, Params
from ..levels import PixelValue


class AttackParams(Params):
    eps: list[PixelValue] = Field(min_length=1, description="Linf radii in [0, 1] pixel units, e.g. 8/255")

    @field_validator("eps")
    @classmethod
    def _in_range(cls, values):
        for v in values:
            if not 0 <= v <= 1:
                raise ValueError(f"epsilon {v} is outside [0, 1] (write 8/255, not 8)")
        return values


class Attack(Condition):
    group: ClassVar[str] = "attack"
    model_dependent: ClassVar[bool] = True
    restarts: int = 1

    def levels(self):
        return list(self.params.eps)

    def make(self, model, eps: float):
        """The torchattacks object for one epsilon."""
        raise NotImplementedError

    def attack(self, model, x, y, indices, level):
        # torchattacks draws its random start from the global generator: seed it per batch so that
        # the same suite gives the same adversarial examples.
        atk = self.make(model, float(level))
        x_adv = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for restart in range(self.restarts):
            torch.manual_seed(derive_seed(self.seed, self.name, float(level), restart, int(indices[0])))
            candidate = atk(x, y)
            if self.restarts == 1:
                return candidate
            with torch.no_grad():
                wrong = model(candidate).argmax(1) != y
            take = wrong & ~fooled
            x_adv[take] = candidate[take]
            fooled |= wrong
            if bool(fooled.all()):
                break
        return x_adv
