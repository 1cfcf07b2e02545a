from __future__ import annotations

from ..lazy import lazy
from . import CONDITIONS
from .attack import Attack, AttackParams

torchattacks = lazy("torchattacks")


@CONDITIONS.register("fgsm")
class FGSM(Attack):
    """Fast gradient sign method (Goodfellow et al., 2015): x + eps * sign(grad CE), one step."""

    name = "fgsm"
    kind = "single_step"
    Params = AttackParams

    def run_once(self, model, x, y, eps, start):
        return torchattacks.FGSM(model, eps=eps)(x, y)  # deterministic: no random start
