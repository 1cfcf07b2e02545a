from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import CONDITIONS
from .attack import Attack, AttackParams


class APGDParams(AttackParams):
    loss: Literal["ce", "dlr"] = Field("ce", description="cross-entropy, or the difference of logits ratio (shift- and scale-invariant)")
    steps: int = Field(100, ge=1)
    restarts: int = Field(1, ge=1)


@CONDITIONS.register("apgd")
class APGD(Attack):
    """Auto-PGD (Croce & Hein, 2020) on CE or DLR, pyautoattack's reference APGDAttack.

    The step size adapts to the loss' progress, so there is none to tune; restarts keep each
    example's first success."""

    name = "apgd"
    Params = APGDParams
    restarts = 1  # pyautoattack restarts by itself (n_restarts), on the examples not yet fooled

    @property
    def kind(self):
        return "margin" if self.params.loss == "dlr" else "ce"

    def run_once(self, model, x, y, eps, seed):
        from pyautoattack.autopgd_base import APGDAttack

        p = self.params
        atk = APGDAttack(model, n_iter=p.steps, norm="Linf", n_restarts=p.restarts, eps=eps, seed=seed, loss=p.loss,
                         eot_iter=1, rho=0.75, device=x.device)  # fmt: skip
        return atk.perturb(x, y)
