from __future__ import annotations

import torchattacks

from . import CONDITIONS
from .attack import AttackParams, TorchattacksAttack


@CONDITIONS.register("fgsm")
class FGSM(TorchattacksAttack):
    """Fast gradient sign method (Goodfellow et al., 2015): x + eps * sign(grad CE), one step."""

    name = "fgsm"
    kind = "single_step"
    Params = AttackParams

    def make(self, model, eps):
        return torchattacks.FGSM(model, eps=eps)
