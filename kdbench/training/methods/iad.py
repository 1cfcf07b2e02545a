from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.evaluation.conditions.pgd import cross_entropy
from kdbench.training.methods import register_method
from kdbench.training.methods.ard import REDUCTION, KLReduction
from kdbench.training.methods.base import MethodParams, RobustDistillMethod, kl_divergence, teacher_log_probs
from kdbench.training.methods.inner_attack import InnerAttack, perturb
from kdbench.util.lazy import lazy

torch = lazy("torch")
F = lazy("torch.nn.functional")


class IADParams(MethodParams):
    name: Literal["iad"] = "iad"
    alpha: float = Field(
        1.0, ge=0, le=1, description="weight of the distillation terms (1.0); 1 - alpha weighs CE on clean images"
    )
    temperature: float = Field(1.0, gt=0, description="T of the teacher term (the authors' default, 1)")
    beta: float = Field(0.1, ge=0, description="the trust exponent: a_i = p_t(x_adv)[y_i]^beta (0.1)")
    begin: float = Field(
        0.3,
        ge=0,
        le=1,
        description="introspection starts at the first epoch whose progress (epoch / (epochs - 1), from 0) "
        "reaches begin: 0.3 is the authors' epoch 60 of 200",
    )
    reduction: KLReduction = Field("batchmean", description=REDUCTION)
    attack: InnerAttack = Field(
        default_factory=InnerAttack, description="the inner attack: {eps, step_size, steps, start, mode}"
    )


@register_method("iad")
class IAD(RobustDistillMethod):
    """IAD (Zhu et al., 2022): ARD trusting the teacher on x_adv as far as p_t(x_adv)[y]^beta, the rest from the
    student's own clean prediction.

    IAD-I, introspective adversarial distillation, as the authors' code (ZFancy/IAD, IAD-I.py)
    computes it:

    alpha * T^2 * KL(p_t^T(x) || p_s^T(x_adv)) + alpha * (1/B) sum_i (1 - a_i) KL(p_s(x) || p_s(x_adv))_i
    + (1 - alpha) * CE(z_s(x), y),   a_i = p_t(x_adv)[y_i]^beta,

    the introspection term (zero before) from the epoch whose progress reaches `begin`. x_adv = PGD
    on the student's CE, as in ARD. The student's clean prediction in the introspection term
    carries gradient, as in the authors' code; a_i does not. One clean forward pass serves both
    clean terms, where the authors' code runs two (and one more on x_adv, unused): only BatchNorm's
    running statistics see the difference.

    Its twin is pgd_at, at the same attack budget."""

    Params = IADParams

    def forward_train(self, student, teachers, batch):
        p = self.params
        x_adv = perturb(student, batch.x, batch.y, cross_entropy, p.attack, batch)
        t = p.temperature
        z_adv = student(x_adv)
        target = teacher_log_probs(teachers.logits(batch), t, self.ensemble)
        logits = student(batch.x)
        losses = {
            "kl_adv": p.alpha * t * t * kl_divergence(target, F.log_softmax(z_adv / t, dim=1), p.reduction),
            "ce": (1 - p.alpha) * F.cross_entropy(logits, batch.y),
        }
        if batch.progress >= p.begin:
            trust = teacher_log_probs(teachers.on(x_adv), 1.0, self.ensemble).exp()
            trust = trust.gather(1, batch.y[:, None]).squeeze(1).pow(p.beta)
            self_kl = F.kl_div(
                F.log_softmax(z_adv, dim=1), F.log_softmax(logits, dim=1), reduction="none", log_target=True
            )
            per_example = self_kl.sum(1) if p.reduction == "batchmean" else self_kl.mean(1)
            losses["introspection"] = p.alpha * (per_example * (1 - trust)).mean()
        else:
            losses["introspection"] = logits.new_zeros(())
        return logits, losses
