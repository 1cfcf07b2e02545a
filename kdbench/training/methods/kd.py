from __future__ import annotations

from typing import Literal

from kdbench.training.methods import register_method
from kdbench.training.methods.base import DistillParams, SoftTargetMethod
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")


class KDParams(DistillParams):
    name: Literal["kd"] = "kd"


@register_method("kd")
class KD(SoftTargetMethod):
    """Hinton et al. (2015):  alpha * CE(z_s, y) + (1 - alpha) * T^2 * KL(p_t^T || p_s^T).

    p^T = softmax(z / T); KL is summed over classes and averaged over the batch (`batchmean`).
    """

    soft_name = "kd"
    Params = KDParams

    def soft(self, student_logits, teacher_log_p, t):
        return F.kl_div(
            F.log_softmax(student_logits / t, dim=-1), teacher_log_p, reduction="batchmean", log_target=True
        )
