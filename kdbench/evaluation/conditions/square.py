from __future__ import annotations

from typing import Annotated

from pydantic import Field

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.attack import Attack, AttackParams
from kdbench.util.budgets import QUERIES


class SquareParams(AttackParams):
    queries: Annotated[int, QUERIES] = Field(5000, ge=1, description="model queries per example")
    p_init: float = Field(0.8, gt=0, le=1, description="initial fraction of pixels in a square (AutoAttack's 0.8)")


@register_condition("square")
class Square(Attack):
    """Square Attack (Andriushchenko et al., 2020), black-box, pyautoattack's SquareAttack, Linf or L2.

    Random search on the margin loss with queries only, no gradients, so gradient masking cannot
    stop it."""

    kind = "black_box"
    Params = SquareParams
    batch_independent = False  # its squares are drawn once per step for the whole batch

    def passes(self, level):
        return self.params.queries + 1, 0  # queries only, at most (it stops on fooled examples)

    def run_once(self, model, x, y, eps, start):
        from pyautoattack.square import SquareAttack

        p = self.params
        atk = SquareAttack(
            model,
            p_init=p.p_init,
            n_queries=p.queries,
            eps=eps,
            norm=p.norm,
            n_restarts=1,
            seed=start.batch_seed,
            verbose=False,
            device=x.device,
            resc_schedule=False,
        )
        return atk.perturb(x, y)
