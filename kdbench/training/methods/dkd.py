from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, TeacherMethod, teacher_log_probs
from kdbench.util.budgets import EPOCHS
from kdbench.util.lazy import lazy

torch = lazy("torch")
F = lazy("torch.nn.functional")


class DKDParams(CEWeightedParams):
    name: Literal["dkd"] = "dkd"
    alpha: float = Field(1.0, ge=0, description="weight of TCKD (target class)")
    beta: float = Field(8.0, ge=0, description="weight of NCKD (non-target classes)")
    temperature: float = Field(4.0, gt=0)
    warmup: Annotated[int, EPOCHS] = Field(20, ge=1, description="epochs over which the DKD term ramps up linearly")


@register_method("dkd")
class DKD(TeacherMethod):
    """DKD (Zhao et al., 2022):  ce_weight * CE + min(epoch / warmup, 1) * T^2 * (alpha * TCKD + beta * NCKD).

    TCKD = KL(b_t || b_s) on the binary (target, rest) split of p^T = softmax(z / T); NCKD = KL(q_t || q_s)
    on the non-target classes renormalised. Both summed over classes, averaged over the batch;
    epochs count from 1. Defaults: mdistiller's CIFAR-100 configuration.
    """

    Params = DKDParams

    def forward_train(self, student, teachers, batch):
        logits = student(batch.x)
        p = self.params
        t = p.temperature
        log_t = teacher_log_probs(teachers.logits(batch), t, self.ensemble)
        tckd, nckd = decoupled_kl(F.log_softmax(logits / t, dim=1), log_t, batch.y)
        warm = min(batch.epoch / p.warmup, 1.0)
        return logits, {
            "ce": p.ce_weight * F.cross_entropy(logits, batch.y),
            "tckd": warm * p.alpha * t * t * tckd,
            "nckd": warm * p.beta * t * t * nckd,
        }


def decoupled_kl(log_s, log_t, labels):
    """(TCKD, NCKD) from student and teacher log-probabilities (B, C), each a batch mean."""
    gt = F.one_hot(labels, log_s.shape[1]).bool()

    # log of each side's target probability and of its complement, 1 - p_y, from the other classes
    def split(log_p):
        log_gt = log_p.masked_fill(~gt, -torch.inf).logsumexp(1)
        log_rest = log_p.masked_fill(gt, -torch.inf).logsumexp(1)
        return log_gt, log_rest

    s_gt, s_rest = split(log_s)
    t_gt, t_rest = split(log_t)
    tckd = t_gt.exp() * (t_gt - s_gt) + t_rest.exp() * (t_rest - s_rest)
    q_t, log_q_s = log_t - t_rest[:, None], log_s - s_rest[:, None]  # non-target classes, renormalised
    nckd = torch.where(gt, torch.zeros_like(q_t), q_t.exp() * (q_t - log_q_s)).sum(1)
    return tckd.mean(), nckd.mean()
