from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, FeatureMethod
from kdbench.util.lazy import lazy

torch = lazy("torch")
nn = lazy("torch.nn")
F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class CCParams(CEWeightedParams):
    name: Literal["cc"] = "cc"
    feat_weight: float = Field(0.003, ge=0, description="weight of the correlation loss (torchdistill's 0.003)")
    embed_dim: int = Field(128, ge=1, le=65536, description="width of the two linear embeddings (128)")
    gamma: float = Field(0.4, gt=0, description="the Gaussian kernel's gamma (0.4)")
    max_p: int = Field(2, ge=0, le=16, description="order of the kernel's Taylor expansion (2)")


@register_method("cc")
class CC(FeatureMethod):
    """Correlation congruence (Peng et al., 2019), as torchdistill computes it: ce_weight * CE +
    feat_weight * ||C(e_s) - C(e_t)||_F / B^2, where e is a linear embedding (embed_dim wide) of each
    network's pooled features and C the (B, B) Gaussian-kernel correlation, approximated by its
    Taylor expansion to order max_p: C_ij = exp(-2 gamma) sum_{p=0..max_p} (2 gamma)^p / p! (e_i . e_j)^p.

    Both embeddings train with the student (as in RepDistiller) and are dropped afterwards; the
    teacher's features carry no gradient.
    """

    Params = CCParams

    def setup(self, student, teachers, labels):
        s = feats.feature_shapes(student).embedding.shape[1]
        t = feats.feature_shapes(teachers.models[0]).embedding.shape[1]
        d = self.params.embed_dim
        self.embed = nn.ModuleDict({"student": nn.Linear(s, d), "teacher": nn.Linear(t, d)})
        return self.embed

    def forward_train(self, student, teachers, batch):
        f_s = feats.features(student, batch.x)
        f_t = teachers.features_of(batch)[0]
        p = self.params
        e_s, e_t = self.embed["student"](f_s.embedding), self.embed["teacher"](f_t.embedding)
        loss = correlation_loss(e_s, e_t, p.gamma, p.max_p)
        return f_s.logits, {"ce": p.ce_weight * F.cross_entropy(f_s.logits, batch.y), "cc": p.feat_weight * loss}


def correlation(e, gamma: float, max_p: int):
    """The (B, B) Taylor-expanded Gaussian-kernel correlation of the rows of e."""
    dots = e @ e.t()
    terms = sum((2 * gamma) ** k / math.factorial(k) * dots.pow(k) for k in range(1, max_p + 1))
    return math.exp(-2 * gamma) * (1 + terms)


def correlation_loss(e_s, e_t, gamma: float = 0.4, max_p: int = 2):
    """||C(e_s) - C(e_t)||_F / B^2."""
    b = e_s.shape[0]
    return torch.dist(correlation(e_s, gamma, max_p), correlation(e_t, gamma, max_p), 2) / (b * b)
