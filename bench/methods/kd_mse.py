from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from . import register_method
from .base import DistillParams, Method, teacher_log_probs
from .temperature import temperature_at


class KDMSEParams(DistillParams):
    name: Literal["kd_mse"] = "kd_mse"


@register_method("kd_mse")
class KDMSE(Method):
    """alpha * CE(z_s, y) + (1 - alpha) * T^2 * (1/B) sum_b sum_c (p_s^T - p_t^T)^2.

    The squared error between softened probabilities is summed over classes and averaged over the
    batch, like `kd`'s KL, and scaled by T^2 for the same reason.
    """

    name = "kd_mse"
    needs_teacher = True
    Params = KDMSEParams

    def losses(self, student_logits, teacher_logits, labels, progress):
        a = self.params.alpha
        t = temperature_at(self.params.temperature, progress)
        p_s = F.softmax(student_logits / t, dim=-1)
        p_t = teacher_log_probs(teacher_logits, t, self.ensemble).exp()
        mse = (p_s - p_t).pow(2).sum(-1).mean()
        return {"ce": a * F.cross_entropy(student_logits, labels), "mse": (1 - a) * t * t * mse}
