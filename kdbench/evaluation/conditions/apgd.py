from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.attack import Attack, AttackParams, first_success
from kdbench.util.budgets import RESTARTS, STEPS
from kdbench.util.lazy import lazy

torch = lazy("torch")


class APGDParams(AttackParams):
    loss: Literal["ce", "dlr"] = Field(
        "ce", description="cross-entropy, or the difference of logits ratio (shift- and scale-invariant)"
    )
    steps: Annotated[int, STEPS] = Field(100, ge=1)
    restarts: Annotated[int, RESTARTS] = Field(1, ge=1)


def apgd_run(atk, x, y, start: torch.Tensor) -> torch.Tensor:
    """One run of a pyautoattack APGD object from our own start (its `perturb` draws the start for
    the whole batch from one generator), scaled as theirs: Linf, uniform noise whose largest entry
    is eps; L2, normal noise of L2 norm eps.
    Examples it fools get their adversarial image, the others stay clean."""
    atk.init_hyperparam(x)
    _, robust, _, adv = atk.attack_single_run(x, y, x_init=x + atk.eps * atk.normalize(start))
    return torch.where((robust == 0).view(-1, *[1] * (x.dim() - 1)), adv, x)


@register_condition("apgd")
class APGD(Attack):
    """Auto-PGD (Croce & Hein, 2020) on CE or DLR, pyautoattack's reference APGDAttack.

    The step size adapts to the loss' progress, so there is none to tune; restarts run on the
    examples not yet fooled, as in pyautoattack."""

    Params = APGDParams

    @property
    def kind(self):
        return "margin" if self.params.loss == "dlr" else "ce"

    def run_once(self, model, x, y, eps, start):
        from pyautoattack.autopgd_base import APGDAttack

        p = self.params
        atk = APGDAttack(
            model,
            n_iter=p.steps,
            norm=p.norm,
            n_restarts=1,
            eps=eps,
            loss=p.loss,
            eot_iter=1,
            rho=0.75,
            device=x.device,
        )
        # as pyautoattack's perturb: only the examples classified correctly are attacked
        return first_success(
            model, x, y, [lambda rows: apgd_run(atk, x[rows], y[rows], start(x[rows], rows=rows))], only_correct=True
        )
