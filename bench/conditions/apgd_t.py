from __future__ import annotations

from pydantic import Field

from . import CONDITIONS
from .attack import Attack, AttackParams


class APGDTParams(AttackParams):
    steps: int = Field(100, ge=1)
    restarts: int = Field(1, ge=1)
    target_classes: int = Field(9, ge=1, description="attack towards each of the k most likely wrong classes (at most classes - 1)")


@CONDITIONS.register("apgd_t")
class APGDT(Attack):
    """Targeted APGD-DLR towards each of the top-k wrong classes, pyautoattack's APGDAttack_targeted."""

    name = "apgd_t"
    kind = "margin"
    Params = APGDTParams
    restarts = 1  # pyautoattack restarts by itself (n_restarts), on the examples not yet fooled

    def run_once(self, model, x, y, eps, seed):
        from pyautoattack.autopgd_base import APGDAttack_targeted

        p = self.params
        with_logits = model(x[:1])
        k = min(p.target_classes, with_logits.shape[1] - 1)  # the targeted DLR loss needs 4 classes or more
        atk = APGDAttack_targeted(model, n_iter=p.steps, norm="Linf", n_restarts=p.restarts, eps=eps, seed=seed,
                                  n_target_classes=k, eot_iter=1, rho=0.75, device=x.device)  # fmt: skip
        return atk.perturb(x, y)
