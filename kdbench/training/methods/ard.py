from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.evaluation.conditions.pgd import cross_entropy
from kdbench.training.methods import register_method
from kdbench.training.methods.base import MethodParams, RobustDistillMethod, kl_divergence, teacher_log_probs
from kdbench.training.methods.inner_attack import InnerAttack, perturb
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")

KLReduction = Literal["batchmean", "mean"]
REDUCTION = (
    "batchmean: KL summed over classes and averaged over the batch (the paper's formula); "
    "mean: also averaged over classes, as the authors' code (nn.KLDivLoss()) does: 1/C of it"
)


class ARDParams(MethodParams):
    name: Literal["ard"] = "ard"
    alpha: float = Field(
        1.0,
        ge=0,
        le=1,
        description="weight of the KL term (ARD's convention, unlike kd's); 1 - alpha weighs CE on clean images",
    )
    temperature: float = Field(30.0, gt=0, description="T of the KL term (the authors' default, 30)")
    reduction: KLReduction = Field("batchmean", description=REDUCTION)
    attack: InnerAttack = Field(
        default_factory=InnerAttack, description="the inner attack: {eps, step_size, steps, start, mode}"
    )


@register_method("ard")
class ARD(RobustDistillMethod):
    """ARD (Goldblum et al., 2020): alpha * T^2 * KL(p_t^T(x) || p_s^T(x_adv)) + (1 - alpha) * CE(z_s(x), y).

    x_adv = PGD on the student's CE(z_s(x'), y), as in the paper and the authors' code.

    Its twin is pgd_at: same inner attack (same starts at the same seed), hard labels only. The
    clean forward runs even at alpha = 1, as in the authors' code (it moves BatchNorm's running
    statistics towards clean images)."""

    Params = ARDParams

    def forward_train(self, student, teachers, batch):
        p = self.params
        x_adv = perturb(student, batch.x, batch.y, cross_entropy, p.attack, batch)
        t = p.temperature
        target = teacher_log_probs(teachers.logits(batch), t, self.ensemble)
        adv = kl_divergence(target, F.log_softmax(student(x_adv) / t, dim=1), p.reduction)
        logits = student(batch.x)
        return logits, {"kl_adv": p.alpha * t * t * adv, "ce": (1 - p.alpha) * F.cross_entropy(logits, batch.y)}
