from __future__ import annotations

from typing import Annotated

from pydantic import Field

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.attack import Attack, AttackParams
from kdbench.evaluation.conditions.autoattack import AutoAttackCondition, AutoAttackParams
from kdbench.evaluation.conditions.cw import CW, CWParams
from kdbench.evaluation.conditions.fgsm import FGSM
from kdbench.evaluation.conditions.pgd import PGD, PGDParams
from kdbench.util.budgets import STEPS

EXPANDS_TO = ("autoattack", "fgsm", "pgd", "cw")  # what `build` returns, in order; the suite's error names them


class RobustParams(AttackParams):
    steps: Annotated[int, STEPS] = Field(
        20, ge=1, description="iterations of the PGD-CE and CW attacks (AutoAttack keeps its own budget)"
    )


@register_condition("robust")
class Robust(Attack):
    """Preset: autoattack (standard), fgsm, pgd and cw at the same epsilons and norm.

    The worst case over them is the headline; the single attacks feed the masking checks."""

    Params = RobustParams

    @classmethod
    def build(cls, params, seed):
        common = {"norm": params.norm, "eps": params.eps}
        return [
            AutoAttackCondition(AutoAttackParams(**common), seed),
            FGSM(AttackParams(**common), seed),
            PGD(PGDParams(**common, steps=params.steps), seed),
            CW(CWParams(**common, steps=params.steps), seed),
        ]
