from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, TeacherMethod, teacher_log_probs
from kdbench.util.lazy import lazy

torch = lazy("torch")
F = lazy("torch.nn.functional")

EPS = 1e-8  # in the cosine's denominator, as the authors' code has it


class DISTParams(CEWeightedParams):
    name: Literal["dist"] = "dist"
    beta: float = Field(1.0, ge=0, description="weight of the inter-class relation")
    gamma: float = Field(1.0, ge=0, description="weight of the intra-class relation")
    tau: float = Field(1.0, gt=0, description="temperature of both softmaxes")


def pearson_rows(a, b):
    """Pearson correlation of each row of a with the same row of b."""
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + EPS)


@register_method("dist")
class DIST(TeacherMethod):
    """DIST (Huang et al., 2022):  ce_weight * CE
    + tau^2 * (beta * (1 - pearson_rows(p_s, p_t)) + gamma * (1 - pearson_cols(p_s, p_t))).

    p = softmax(z / tau); the inter-class term averages the Pearson correlation of each example's
    row, the intra-class term that of each class's column over the batch. Defaults: the authors'
    DIST class."""

    Params = DISTParams

    def losses(self, student_logits, teacher_logits, labels, progress):
        p = self.params
        y_s = F.softmax(student_logits / p.tau, dim=1)
        y_t = teacher_log_probs(teacher_logits, p.tau, self.ensemble).exp()
        inter = 1 - pearson_rows(y_s, y_t).mean()
        intra = 1 - pearson_rows(y_s.T, y_t.T).mean()
        t2 = p.tau * p.tau
        return {
            "ce": p.ce_weight * F.cross_entropy(student_logits, labels),
            "inter": p.beta * t2 * inter,
            "intra": p.gamma * t2 * intra,
        }
