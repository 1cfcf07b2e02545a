from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.apgd import APGD, APGDParams
from kdbench.evaluation.conditions.attack import Attack, AttackParams
from kdbench.evaluation.conditions.pgd import PGD, PGDParams
from kdbench.util.budgets import STEPS


class TransferParams(AttackParams):
    source: str = Field(
        "teacher", description="teacher | baseline_twin | a model of the suite: where the examples are crafted"
    )
    attack: Literal["pgd", "apgd"] = Field("pgd", description="the white-box attack run on the source")
    steps: Annotated[int, STEPS] = Field(20, ge=1)


@register_condition("transfer")
class Transfer(Attack):
    """Transfer attack: examples crafted on another model of the suite, scored on this one.

    The source is the model's teacher, its baseline twin, or a named model."""

    kind = "black_box"
    needs_source = True
    Params = TransferParams

    def __init__(self, params, seed=0):
        super().__init__(params, seed)
        p = params
        inner = (
            PGD(PGDParams(norm=p.norm, eps=p.eps, steps=p.steps), seed)
            if p.attack == "pgd"
            else APGD(APGDParams(norm=p.norm, eps=p.eps, steps=p.steps), seed)
        )
        self.inner = inner
        self._crafted: dict = {}  # (source, level) -> examples of the current batch, shared by its targets

    def passes(self, level):
        return self.inner.passes(level)  # crafted on the source, once per batch, scored here

    def attack(self, model, x, y, indices, level, source=None):
        if source is None:
            raise ValueError("transfer needs a source model")
        batch = (int(indices[0]), len(indices))
        if self._crafted.get("batch") != batch:
            self._crafted = {"batch": batch}
        key = (id(source), float(level))
        if key not in self._crafted:
            self._crafted[key] = self.inner.attack(source, x, y, indices, level)
        return self._crafted[key]
