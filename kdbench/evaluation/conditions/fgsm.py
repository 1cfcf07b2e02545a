from __future__ import annotations

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.attack import Attack, AttackParams, pgd_steps
from kdbench.evaluation.conditions.pgd import cross_entropy
from kdbench.util.lazy import lazy

torchattacks = lazy("torchattacks")


@register_condition("fgsm")
class FGSM(Attack):
    """Fast gradient sign method (Goodfellow et al., 2015): x + eps * sign(grad CE), one step.

    Under L2 its form is the fast gradient method: x + eps * grad / ||grad||_2 (one step of
    torchattacks.PGDL2 from the clean image with step eps)."""

    kind = "single_step"
    Params = AttackParams

    def run_once(self, model, x, y, eps, start):  # deterministic: no random start
        if self.norm == "L2":
            return pgd_steps(model, x, y, eps, eps, 1, cross_entropy, None, "L2")
        return torchattacks.FGSM(model, eps=eps)(x, y)
