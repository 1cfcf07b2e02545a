from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, FeatureMethod
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class SPParams(CEWeightedParams):
    name: Literal["sp"] = "sp"
    feat_weight: float = Field(3000.0, ge=0, description="weight of the similarity loss (RepDistiller's beta)")


@register_method("sp")
class SP(FeatureMethod):
    """Similarity-preserving KD (Tung & Mori, 2019), on the last stage's outputs, as RepDistiller
    and mdistiller run it on CIFAR: ce_weight * CE + feat_weight * ||G_s - G_t||_F^2 / B^2, where
    G = the (B, B) Gram matrix of the flattened features, each row L2-normalised.

    The two networks' features may differ in width and size: only the B x B similarities meet.
    The teacher's side carries no gradient.
    """

    Params = SPParams

    def forward_train(self, student, teachers, batch):
        f_s = feats.features(student, batch.x)
        f_t = teachers.features_of(batch)[0]
        p = self.params
        loss = similarity_loss(f_s.stages[-1], f_t.stages[-1])
        return f_s.logits, {
            "ce": p.ce_weight * F.cross_entropy(f_s.logits, batch.y),
            "similarity": p.feat_weight * loss,
        }


def similarity_loss(f_s, f_t):
    """||normalize(f_s f_s^T) - normalize(f_t f_t^T)||_F^2 / B^2, with f flattened to (B, -1)."""
    b = f_s.shape[0]
    g_s = F.normalize(f_s.flatten(1) @ f_s.flatten(1).t(), dim=1)
    g_t = F.normalize(f_t.flatten(1) @ f_t.flatten(1).t(), dim=1)
    return (g_t - g_s).pow(2).sum() / (b * b)
