from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.ard import REDUCTION, KLReduction
from kdbench.training.methods.base import MethodParams, RobustDistillMethod, kl_divergence, teacher_log_probs
from kdbench.training.methods.inner_attack import KLInnerAttack, perturb
from kdbench.training.methods.trades import kl_from
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")


class RSLADParams(MethodParams):
    name: Literal["rslad"] = "rslad"
    alpha: float = Field(
        1 / 6, ge=0, le=1, description="weight of the clean term (1/6); 1 - alpha weighs the adversarial term (5/6)"
    )
    reduction: KLReduction = Field(
        "batchmean", description=REDUCTION.replace("nn.KLDivLoss()", "a mean over all elements")
    )
    attack: KLInnerAttack = Field(
        default_factory=KLInnerAttack, description="the inner attack: {eps, step_size, steps, start, mode}"
    )


@register_method("rslad")
class RSLAD(RobustDistillMethod):
    """RSLAD (Zi et al., 2021): (1 - alpha) * KL(p_t(x) || p_s(x_adv)) + alpha * KL(p_t(x) || p_s(x)), alpha = 1/6.

    x_adv = PGD on KL(p_t(x) || p_s(x')): the teacher's soft labels on clean images replace the
    hard labels everywhere, in the attack too. T = 1.

    Its twin is pgd_at, at the same attack budget."""

    Params = RSLADParams

    def forward_train(self, student, teachers, batch):
        p = self.params
        target = teacher_log_probs(teachers.logits(batch), 1.0, self.ensemble)
        x_adv = perturb(student, batch.x, batch.y, kl_from(target), p.attack, batch)

        def kl(z):
            return kl_divergence(target, F.log_softmax(z, dim=1), p.reduction)

        adv = kl(student(x_adv))  # before the clean forward, as in the authors' code (BatchNorm statistics)
        logits = student(batch.x)
        return logits, {"kl_adv": (1 - p.alpha) * adv, "kl_clean": p.alpha * kl(logits)}
