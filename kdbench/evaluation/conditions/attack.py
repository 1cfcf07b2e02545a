"""What every attack shares: Linf epsilons, random starts seeded per example, worst case over restarts.

An attack is a model-dependent condition: `attack(model, x, y, indices, level)` returns
adversarial images in [0, 1] within `level` (Linf) of `x`. The evaluator scores them and applies
RobustBench's convention (robust = correct on the clean image AND on the adversarial one), so an
attack need not care about clean mistakes. `whole_set` attacks (AutoAttack) get every evaluated
example at once and batch internally; `needs_source` attacks (transfer) craft on another model.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from kdbench.evaluation.conditions.base import Condition, Params
from kdbench.util.lazy import lazy
from kdbench.util.levels import PixelValue
from kdbench.util.seeding import derive_seed, per_example_uniform

torch = lazy("torch")


class AttackParams(Params):
    eps: list[PixelValue] = Field(min_length=1, description="Linf radii in [0, 1] pixel units, e.g. 8/255")

    @field_validator("eps")
    @classmethod
    def _in_range(cls, values):
        for v in values:
            if not 0 <= v <= 1:
                raise ValueError(f"epsilon {v} is outside [0, 1] (write 8/255, not 8)")
        return values


class Starts:
    """Random starts for one (attack, level, restart): uniform noise in [-1, 1) per example, seeded
    by the example's index, so an image's adversarial example does not depend on the batch it sits
    in or on the batch size. `extra` keys further draws (APGD-T's target classes)."""

    def __init__(self, key: tuple, indices: torch.Tensor):
        self.key, self.indices = key, indices

    def __call__(self, like: torch.Tensor, *extra, rows: torch.Tensor | None = None) -> torch.Tensor:
        idx = self.indices if rows is None else self.indices[rows.cpu()]
        return per_example_uniform(like.shape[1:], idx, *self.key, *extra, device=like.device, dtype=like.dtype)

    @property
    def batch_seed(self) -> int:
        """One seed for the whole batch, for reference implementations that draw from a single
        generator (Square): their results depend on how examples are batched."""
        return derive_seed(*self.key, int(self.indices[0]))


class Attack(Condition):
    group: ClassVar[str] = "attack"
    model_dependent: ClassVar[bool] = True
    whole_set: ClassVar[bool] = False
    needs_source: ClassVar[bool] = False
    # False where the reference implementation shares randomness across a batch: the evaluation
    # batch size then enters the evaluation's hash (plan.eval_spec_of).
    batch_independent: ClassVar[bool] = True
    # How the gradient-masking checks read this attack's rows: "single_step", "ce" (iterative on
    # cross-entropy), "margin" (iterative on a margin / DLR loss), "black_box", "composite".
    kind: ClassVar[str] = "ce"

    @property
    def restarts(self) -> int:
        """Seeded runs per example; an example is robust only if it survives them all."""
        return getattr(self.params, "restarts", 1)

    def levels(self):
        return list(self.params.eps)

    def passes(self, level) -> tuple[int, int]:
        """One gradient step per restart (FGSM), then the scoring forward; iterative attacks say more."""
        steps = getattr(self.params, "steps", 1)
        return 1, steps * self.restarts

    def run_once(self, model, x, y, eps: float, start: Starts) -> torch.Tensor:
        """One run of the attack on a batch, its random starts drawn from `start`."""
        raise NotImplementedError

    def attack(self, model, x, y, indices, level, source=None):
        def starts(restart, idx):
            return Starts((self.seed, self.name, float(level), restart), idx)

        if self.restarts == 1:
            return self.run_once(model, x, y, float(level), starts(0, indices))
        runs = (
            lambda rows, r=r: self.run_once(model, x[rows], y[rows], float(level), starts(r, indices[rows.cpu()]))
            for r in range(self.restarts)
        )
        return first_success(model, x, y, runs)


def first_success(model, x, y, runs, only_correct: bool = False) -> torch.Tensor:
    """Worst case over several runs of an attack: each run (a function of the rows still to fool)
    sees only the examples the earlier ones did not fool, and an example keeps the first image
    that fooled the model (pyautoattack's restarts work the same way). `only_correct`: examples
    misclassified when clean are not attacked at all (they count as not robust anyway)."""
    x_adv = x.clone()
    todo = torch.arange(len(x), device=x.device)
    if only_correct:
        with torch.no_grad():
            todo = todo[model(x).argmax(1) == y]
    for run in runs:
        if len(todo) == 0:
            break
        candidate = run(todo)
        with torch.no_grad():
            fooled = model(candidate).argmax(1) != y[todo]
        x_adv[todo[fooled]] = candidate[fooled]
        todo = todo[~fooled]
    return x_adv


def pgd_steps(
    model, x, y, eps: float, step_size: float, steps: int, loss_fn, start: torch.Tensor | None
) -> torch.Tensor:
    """Linf PGD ascending `loss_fn(logits, y)` (summed over the batch): signed gradient steps,
    projected onto the eps-ball and the [0, 1] box after each one. `start`: uniform noise in
    [-1, 1] scaled to the ball (Madry et al.'s random start), or None to start at `x`."""
    x_adv = x.detach().clone()
    if start is not None:
        x_adv = (x_adv + eps * start).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(model(x_adv), y).sum()
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()
