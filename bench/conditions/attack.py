"""What every attack shares: Linf epsilons, per-batch seeds, worst case over restarts.

An attack is a model-dependent condition: `attack(model, x, y, indices, level)` returns
adversarial images in [0, 1] within `level` (Linf) of `x`. The evaluator scores them and applies
RobustBench's convention (robust = correct on the clean image AND on the adversarial one), so an
attack need not care about clean mistakes. `whole_set` attacks (AutoAttack) get every evaluated
example at once and batch internally; `needs_source` attacks (transfer) craft on another model.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, field_validator

from ..levels import PixelValue
from ..seeding import derive_seed
from .base import Condition, Params


class AttackParams(Params):
    eps: list[PixelValue] = Field(min_length=1, description="Linf radii in [0, 1] pixel units, e.g. 8/255")

    @field_validator("eps")
    @classmethod
    def _in_range(cls, values):
        for v in values:
            if not 0 <= v <= 1:
                raise ValueError(f"epsilon {v} is outside [0, 1] (write 8/255, not 8)")
        return values


class Attack(Condition):
    group: ClassVar[str] = "attack"
    model_dependent: ClassVar[bool] = True
    whole_set: ClassVar[bool] = False
    needs_source: ClassVar[bool] = False
    # How the gradient-masking checks read this attack's rows: "single_step", "ce" (iterative on
    # cross-entropy), "margin" (iterative on a margin / DLR loss), "black_box", "composite".
    kind: ClassVar[str] = "ce"

    @property
    def restarts(self) -> int:
        """Seeded runs per batch; an example is robust only if it survives them all."""
        return getattr(self.params, "restarts", 1)

    def levels(self):
        return list(self.params.eps)

    def batch_seed(self, level, restart: int, indices) -> int:
        """A seed per (attack, level, restart, first example): the same suite and batch size give
        the same adversarial examples."""
        return derive_seed(self.seed, self.name, float(level), restart, int(indices[0]))

    def run_once(self, model, x, y, eps: float, seed: int) -> torch.Tensor:
        """One seeded run of the attack on a batch."""
        raise NotImplementedError

    def attack(self, model, x, y, indices, level, source=None):
        x_adv = x.clone()
        fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for restart in range(self.restarts):
            candidate = self.run_once(model, x, y, float(level), self.batch_seed(level, restart, indices))
            if self.restarts == 1:
                return candidate
            with torch.no_grad():
                wrong = model(candidate).argmax(1) != y
            take = wrong & ~fooled
            x_adv[take] = candidate[take]
            fooled |= wrong
            if bool(fooled.all()):
                break
        return x_adv


class TorchattacksAttack(Attack):
    """An attack that is a torchattacks object; torchattacks draws random starts from the global
    generator, so it is seeded before each call."""

    def make(self, model, eps: float):
        raise NotImplementedError

    def run_once(self, model, x, y, eps, seed):
        torch.manual_seed(seed)
        return self.make(model, eps)(x, y)


def pgd_steps(model, x, y, eps: float, step_size: float, steps: int, loss_fn, random_start: bool, seed: int) -> torch.Tensor:
    """Linf PGD ascending `loss_fn(logits, y)` (summed over the batch): signed gradient steps,
    projected onto the eps-ball and the [0, 1] box after each one."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    x_adv = x.detach().clone()
    if random_start:
        noise = torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype) * 2 - 1
        x_adv = (x_adv + eps * noise).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(model(x_adv), y).sum()
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()
