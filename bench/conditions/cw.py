from __future__ import annotations

import torch

from . import CONDITIONS
from .attack import Attack, pgd_steps
from .pgd import PGDParams


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini & Wagner's margin, max_{j != y} z_j - z_y, per example: positive once misclassified.
    Logits, not probabilities: a saturated softmax cannot hide its gradient."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(torch.nn.functional.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.max(1).values - z_y


class CWParams(PGDParams):
    steps: int = 30


@CONDITIONS.register("cw")
class CW(Attack):
    """Linf PGD on the Carlini-Wagner margin loss (max_{j!=y} z_j - z_y) with a fixed budget."""

    name = "cw"
    kind = "margin"
    Params = CWParams

    def run_once(self, model, x, y, eps, seed):
        p = self.params
        return pgd_steps(model, x, y, eps, p.alpha(eps), p.steps, margin_loss, p.random_start, seed)
