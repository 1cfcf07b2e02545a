from __future__ import annotations

from typing import Literal

from kdbench.training.methods import register_method
from kdbench.training.methods.base import DistillParams, SoftTargetMethod
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")


class KDMSEParams(DistillParams):
    name: Literal["kd_mse"] = "kd_mse"


@register_method("kd_mse")
class KDMSE(SoftTargetMethod):
    """alpha * CE(z_s, y) + (1 - alpha) * T^2 * (1/B) sum_b sum_c (p_s^T - p_t^T)^2.

    The squared error between softened probabilities is summed over classes and averaged over the
    batch, like `kd`'s KL.
    """

    soft_name = "mse"
    Params = KDMSEParams

    def soft(self, student_logits, teacher_log_p, t):
        return (F.softmax(student_logits / t, dim=-1) - teacher_log_p.exp()).pow(2).sum(-1).mean()
