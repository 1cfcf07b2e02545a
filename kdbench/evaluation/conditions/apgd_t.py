from __future__ import annotations

from typing import Annotated

from pydantic import Field

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.apgd import apgd_run
from kdbench.evaluation.conditions.attack import Attack, AttackParams, first_success
from kdbench.util.budgets import RESTARTS, STEPS
from kdbench.util.lazy import lazy

torch = lazy("torch")


class APGDTParams(AttackParams):
    steps: Annotated[int, STEPS] = Field(100, ge=1)
    restarts: Annotated[int, RESTARTS] = Field(1, ge=1)
    target_classes: int = Field(
        9, ge=1, description="attack towards each of the k most likely wrong classes (at most classes - 1)"
    )


@register_condition("apgd_t")
class APGDT(Attack):
    """Targeted APGD-DLR towards each of the top-k wrong classes, pyautoattack's APGDAttack_targeted.

    As its `perturb`: the targets in order of the model's clean scores, each run on the examples
    that survived the earlier targets; the start is drawn per example and target."""

    kind = "margin"
    Params = APGDTParams

    def passes(self, level):
        p = self.params
        return 1, p.steps * p.restarts * p.target_classes

    def run_once(self, model, x, y, eps, start):
        from pyautoattack.autopgd_base import APGDAttack_targeted

        p = self.params
        with torch.no_grad():
            ranked = model(x).sort(dim=1)[1]  # the targets: the most likely wrong classes on clean inputs
        k = min(p.target_classes, ranked.shape[1] - 1)  # the targeted DLR loss needs 4 classes or more
        atk = APGDAttack_targeted(
            model,
            n_iter=p.steps,
            norm=p.norm,
            n_restarts=1,
            eps=eps,
            n_target_classes=k,
            eot_iter=1,
            rho=0.75,
            device=x.device,
        )

        def towards(target):
            def run(rows):
                atk.y_target = ranked[rows, -target]
                return apgd_run(atk, x[rows], y[rows], start(x[rows], target, rows=rows))

            return run

        return first_success(model, x, y, (towards(t) for t in range(2, k + 2)), only_correct=True)
