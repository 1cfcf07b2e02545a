from __future__ import annotations

from typing import Annotated

from pydantic import Field

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.pgd import PGD, PGDParams
from kdbench.util.budgets import STEPS
from kdbench.util.lazy import lazy

torch = lazy("torch")


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini & Wagner's margin, max_{j != y} z_j - z_y, per example: positive once misclassified.
    Logits, not probabilities: a saturated softmax cannot hide its gradient."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(torch.nn.functional.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.max(1).values - z_y


class CWParams(PGDParams):
    steps: Annotated[int, STEPS] = Field(30, ge=1)


@register_condition("cw")
class CW(PGD):
    """Linf PGD on the Carlini-Wagner margin loss (max_{j!=y} z_j - z_y) with a fixed budget."""

    kind = "margin"
    Params = CWParams
    loss = staticmethod(margin_loss)
