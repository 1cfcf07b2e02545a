from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from . import register_method
from .base import DistillParams, Method, teacher_log_probs
from .temperature import temperature_at


class KDParams(DistillParams):
    name: Literal["kd"] = "kd"


@register_method("kd")
class KD(Method):
    """Hinton et al. (2015):  alpha * CE(z_s, y) + (1 - alpha) * T^2 * KL(p_t^T || p_s^T).

    p^T = softmax(z / T); KL is summed over classes and averaged over the batch (`batchmean`);
    T^2 keeps the soft term's gradients on the scale of the hard term's as T grows.
    """

    name = "kd"
    needs_teacher = True
    Params = KDParams

    def losses(self, student_logits, teacher_logits, labels, progress):
        a = self.params.alpha
        t = temperature_at(self.params.temperature, progress)
        log_p_s = F.log_softmax(student_logits / t, dim=-1)
        log_p_t = teacher_log_probs(teacher_logits, t, self.ensemble)
        kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        return {"ce": a * F.cross_entropy(student_logits, labels), "kd": (1 - a) * t * t * kl}
