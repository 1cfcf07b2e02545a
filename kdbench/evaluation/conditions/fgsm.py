from __future__ import annotations

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.attack import Attack, AttackParams
from kdbench.util.lazy import lazy

torchattacks = lazy("torchattacks")


@register_condition("fgsm")
class FGSM(Attack):
    """Fast gradient sign method (Goodfellow et al., 2015): x + eps * sign(grad CE), one step."""

    name = "fgsm"
    kind = "single_step"
    Params = AttackParams

    def run_once(self, model, x, y, eps, start):
        return torchattacks.FGSM(model, eps=eps)(x, y)  # deterministic: no random start
