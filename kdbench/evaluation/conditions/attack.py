"""What every attack shares: a threat model (Linf or L2) and its radii, random starts seeded per
example, worst case over restarts.

An attack is a model-dependent condition: `attack(model, x, y, indices, level)` returns
adversarial images in [0, 1] within `level` of `x` in the attack's norm (Linf: per pixel; L2: the
Euclidean norm of the whole perturbation). An L2 attack's rows are named "<attack>_l2". The
evaluator scores them and applies RobustBench's convention (robust = correct on the clean image
AND on the adversarial one), so an attack need not care about clean mistakes. `whole_set` attacks
(AutoAttack) get every evaluated example at once and batch internally; `needs_source` attacks
(transfer) craft on another model.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from kdbench.evaluation.conditions.base import Condition, Params
from kdbench.util.lazy import lazy
from kdbench.util.levels import Number, in_radius_units
from kdbench.util.names import attack_condition
from kdbench.util.seeding import derive_seed, per_example_normal, per_example_uniform

torch = lazy("torch")

Norm = Literal["Linf", "L2"]


class AttackParams(Params):
    norm: Norm = Field(
        "Linf", description="threat model: Linf (per-pixel radius) or L2 (Euclidean norm of the whole perturbation)"
    )
    eps: list[Number] = Field(
        min_length=1,
        description="radii in [0, 1] pixel units: Linf per pixel, e.g. 8/255; L2 over the image, e.g. 0.5",
    )

    @field_validator("eps")
    @classmethod
    def _in_range(cls, values, info: ValidationInfo):
        return [in_radius_units(v, info.data.get("norm", "Linf")) for v in values]


def norm_of_batch(v: torch.Tensor) -> torch.Tensor:
    """Each example's L2 norm, shaped (B, 1, 1, 1) to scale the example."""
    return v.flatten(1).norm(p=2, dim=1).view(-1, *[1] * (v.dim() - 1))


class Starts:
    """Random starts for one (attack, level, restart), seeded by the example's index, so an image's
    adversarial example does not depend on the batch it sits in or on the batch size. Called, it
    gives the reference implementations' draw for the norm (Linf: uniform in [-1, 1); L2: standard
    normal); `in_ball` a point of the unit ball. `extra` keys further draws (APGD-T's targets)."""

    def __init__(self, key: tuple, indices: torch.Tensor, norm: str = "Linf"):
        self.key, self.indices, self.norm = key, indices, norm

    def __call__(self, like: torch.Tensor, *extra, rows: torch.Tensor | None = None) -> torch.Tensor:
        idx = self.indices if rows is None else self.indices[rows.cpu()]
        draw = per_example_normal if self.norm == "L2" else per_example_uniform
        return draw(like.shape[1:], idx, *self.key, *extra, device=like.device, dtype=like.dtype)

    def in_ball(self, like: torch.Tensor) -> torch.Tensor:
        """Madry et al.'s random start, in units of the radius: Linf, uniform in the cube; L2, a
        normal direction at a uniform radius in [0, 1) (as torchattacks.PGDL2 draws it)."""
        draw = self(like)
        if self.norm != "L2":
            return draw
        radius = (per_example_uniform((1,), self.indices, *self.key, "radius", device=like.device) + 1) / 2
        return draw / norm_of_batch(draw) * radius.to(like.dtype).view(-1, *[1] * (like.dim() - 1))

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

    def __init__(self, params, seed: int = 0):
        super().__init__(params, seed)
        # the rows' name: "pgd", or "pgd_l2" under L2, so the norms never share a column
        self.name = attack_condition(type(self).name, self.norm)

    @property
    def norm(self) -> str:
        return getattr(self.params, "norm", "Linf")

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
            return Starts((self.seed, self.name, float(level), restart), idx, self.norm)

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


# torchattacks.PGDL2's guard against dividing by a zero gradient
EPS_FOR_DIVISION = 1e-10


def pgd_steps(
    model, x, y, eps: float, step_size: float, steps: int, loss_fn, start: torch.Tensor | None, norm: str = "Linf"
) -> torch.Tensor:
    """PGD ascending `loss_fn(model(x'), y)` (summed over the batch), projected onto the eps-ball and
    the [0, 1] box after each step. Linf: signed gradient steps, clipped per pixel. L2: steps along
    the gradient scaled to unit L2 norm per example, the perturbation then shrunk to norm eps where
    longer (Madry et al.; torchattacks.PGDL2). `start`: a point of the unit ball (`Starts.in_ball`)
    scaled by eps, or None to start at `x`."""
    x_adv = x.detach().clone()
    if start is not None:
        x_adv = (x_adv + eps * start).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(model(x_adv), y).sum()
            (grad,) = torch.autograd.grad(loss, x_adv)
        if norm == "L2":
            x_adv = x_adv.detach() + step_size * (grad / (norm_of_batch(grad) + EPS_FOR_DIVISION))
            delta = x_adv - x
            delta = delta * torch.clamp(eps / norm_of_batch(delta), max=1.0)
            x_adv = (x + delta).clamp(0, 1)
        else:
            x_adv = x_adv.detach() + step_size * grad.sign()
            x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()
