from __future__ import annotations

import torchattacks

from . import CONDITIONS
from .attack import Attack, AttackParams


@CONDITIONS.register("fgsm")
class FGSM(Attack):
    """Fast gradient sign method (Goodfellow et al., 2015): x + eps * sign(grad), one step."""

    name = "fgsm"
    Params = AttackParams

    def make(self, model, eps):
        return torchattacks.FGSM(model, eps=eps)
