from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.ard import REDUCTION, KLReduction
from kdbench.training.methods.base import MethodParams, RobustDistillMethod, kl_divergence, teacher_log_probs
from kdbench.training.methods.inner_attack import KLInnerAttack, perturb
from kdbench.util.lazy import lazy

torch = lazy("torch")
F = lazy("torch.nn.functional")


class AdaADParams(MethodParams):
    name: Literal["adaad"] = "adaad"
    alpha: float = Field(
        1.0, ge=0, le=1, description="weight of the adversarial term (1.0); 1 - alpha weighs the clean term"
    )
    reduction: KLReduction = Field("batchmean", description=REDUCTION)
    attack: KLInnerAttack = Field(
        default_factory=KLInnerAttack, description="the inner attack: {eps, step_size, steps, start, mode}"
    )


@register_method("adaad")
class AdaAD(RobustDistillMethod):
    """AdaAD (Huang et al., 2023): alpha * KL(p_t(x_adv) || p_s(x_adv)) + (1 - alpha) * KL(p_t(x) || p_s(x)), x_adv
    where teacher and student disagree most.

    Adaptive adversarial distillation, as the authors' code (boyellow/AdaAD,
    AT_helper.adaad_inner_loss and main.py) computes it:

    alpha * KL(p_t(x_adv) || p_s(x_adv)) + (1 - alpha) * KL(p_t(x) || p_s(x)),

    x_adv = PGD on KL(p_t(x') || p_s(x')), the teacher too seeing x': the attack looks for the
    points where the two disagree most, its gradient passing through both networks. The start is
    x + 0.001 N(0, 1) with the student in eval mode, as TRADES'. No temperature.

    Its twin is pgd_at, at the same attack budget."""

    Params = AdaADParams
    attacks_teacher = True

    def forward_train(self, student, teachers, batch):
        p = self.params

        def both(x):  # the student's logits and the teachers' (K, B, C), gradients through both
            return student(x), torch.stack([t(x) for t in teachers.models])

        def disagreement(z, _y):
            z_s, z_t = z
            log_t = teacher_log_probs(z_t, 1.0, self.ensemble)
            return F.kl_div(F.log_softmax(z_s, dim=1), log_t, reduction="none", log_target=True).sum(1)

        x_adv = perturb(student, batch.x, batch.y, disagreement, p.attack, batch, forward=both)
        logits = student(batch.x)  # before the adversarial forward, as in the authors' code
        z_adv = student(x_adv)
        t_adv = teacher_log_probs(teachers.on(x_adv), 1.0, self.ensemble)
        t_clean = teacher_log_probs(teachers.logits(batch), 1.0, self.ensemble)
        return logits, {
            "kl_adv": p.alpha * kl_divergence(t_adv, F.log_softmax(z_adv, dim=1), p.reduction),
            "kl_clean": (1 - p.alpha) * kl_divergence(t_clean, F.log_softmax(logits, dim=1), p.reduction),
        }
