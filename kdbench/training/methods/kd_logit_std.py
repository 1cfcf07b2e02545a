from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, TeacherMethod, teacher_log_probs
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")


class KDLogitStdParams(CEWeightedParams):
    name: Literal["kd_logit_std"] = "kd_logit_std"
    ce_weight: float = Field(
        0.1, ge=0, description="weight of the hard-label cross-entropy (mdistiller's CIFAR KD setting)"
    )
    kd_weight: float = Field(9.0, ge=0, description="weight of the standardised KD term")
    temperature: float = Field(2.0, gt=0, description="the base temperature applied to the standardised logits")


def standardize(z):
    """(z - mean(z)) / (1e-7 + std(z)) per example, over classes (std with Bessel's correction)."""
    return (z - z.mean(-1, keepdim=True)) / (1e-7 + z.std(-1, keepdim=True))


@register_method("kd_logit_std")
class KDLogitStd(TeacherMethod):
    """KD with logit standardisation (Sun et al., 2024):  ce_weight * CE
    + kd_weight * T^2 * KL(softmax(std(z_t) / T) || softmax(std(z_s) / T)).

    std is the per-example z-score of the logits. Defaults: the authors' CIFAR-100 KD run
    (--logit-stand --base-temp 2 --kd-weight 9, with mdistiller's CE weight 0.1)."""

    Params = KDLogitStdParams

    def losses(self, student_logits, teacher_logits, labels, progress):
        p = self.params
        t = p.temperature
        log_t = teacher_log_probs(standardize(teacher_logits), t, self.ensemble)
        kl = F.kl_div(
            F.log_softmax(standardize(student_logits) / t, dim=1), log_t, reduction="batchmean", log_target=True
        )
        return {"ce": p.ce_weight * F.cross_entropy(student_logits, labels), "kd_std": p.kd_weight * t * t * kl}
