"""The attack inside an adversarial training step: Linf PGD on the student, batched on the device.

It runs the evaluation's own PGD loop (`conditions.attack.pgd_steps`: signed gradient ascent on a
loss summed over the batch, projected onto the eps-ball and the [0, 1] box after every step), so
training and evaluation mean the same thing by PGD. What differs between the papers is the loss it
ascends (each method says), where it starts and the mode the student is in while it runs:

- Madry et al. (and ARD, which reuses their attack): a uniform start in the ball, the student in
  training mode (batch statistics; its BatchNorm running statistics see the attack's steps).
- TRADES (and RSLAD, which reuses its attack): a start 0.001 * N(0, 1) from the image, the
  student in eval mode.

The start is drawn from a generator seeded by (training seed, step), on the CPU: the same suite
gives the same draws on any device, and twins (same seed) draw the same starts at every step.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from kdbench.evaluation.conditions.attack import pgd_steps
from kdbench.util.budgets import STEPS
from kdbench.util.lazy import lazy
from kdbench.util.levels import PixelValue
from kdbench.util.seeding import generator
from kdbench.util.strict import STRICT

torch = lazy("torch")

NORMAL_START = 0.001  # TRADES' and RSLAD's start: x + 0.001 * N(0, 1)


class InnerAttack(BaseModel):
    """Madry et al.'s PGD: uniform start in the ball, the student in training mode."""

    model_config = STRICT
    eps: PixelValue = Field(8 / 255, gt=0, description="Linf radius in [0, 1] pixel units (8/255)")
    step_size: PixelValue = Field(2 / 255, gt=0, description="signed-gradient step (2/255)")
    steps: Annotated[int, STEPS] = Field(10, ge=1)
    start: Literal["uniform", "normal", "none"] = Field(
        "uniform", description="uniform in the ball (Madry), x + 0.001 N(0, 1) (TRADES), or x itself"
    )
    mode: Literal["train", "eval"] = Field(
        "train", description="the student's mode while the attack runs (BatchNorm batch or running statistics)"
    )


class KLInnerAttack(InnerAttack):
    """TRADES' PGD (RSLAD reuses it): a 0.001 Gaussian start, the student in eval mode."""

    start: Literal["uniform", "normal", "none"] = "normal"
    mode: Literal["train", "eval"] = "eval"


def perturb(
    student, x: torch.Tensor, target: torch.Tensor, loss_fn, spec: InnerAttack, batch, forward=None
) -> torch.Tensor:
    """Adversarial images for `x` that ascend `loss_fn(forward(x'), target)` (per example, summed;
    `forward` is the student unless the loss also reads another network on x'), seeded by the
    batch's (seed, step). The student's mode is restored afterwards."""
    start = None
    if spec.start != "none":
        gen = generator(batch.seed, "inner_attack", batch.step)
        if spec.start == "uniform":
            start = torch.rand(x.shape, generator=gen).mul_(2).sub_(1)
        else:  # pgd_steps scales its start by eps
            start = torch.randn(x.shape, generator=gen).mul_(NORMAL_START / spec.eps)
        start = start.to(device=x.device, dtype=x.dtype)
    was_training = student.training
    student.train(spec.mode == "train")
    try:
        return pgd_steps(forward or student, x, target, spec.eps, spec.step_size, spec.steps, loss_fn, start)
    finally:
        student.train(was_training)
