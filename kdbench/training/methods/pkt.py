from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, FeatureMethod
from kdbench.util.lazy import lazy

torch = lazy("torch")
F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class PKTParams(CEWeightedParams):
    name: Literal["pkt"] = "pkt"
    feat_weight: float = Field(30000.0, ge=0, description="weight of the PKT loss (RepDistiller's beta)")
    eps: float = Field(1e-7, gt=0, description="added to the norms and inside the log")


@register_method("pkt")
class PKT(FeatureMethod):
    """Probabilistic knowledge transfer (Passalis & Tefas, 2018), on the pooled embeddings, as
    RepDistiller runs it on CIFAR: ce_weight * CE + feat_weight * mean_{i,j} q_ij log(q_ij / p_ij).

    p and q are the student's and the teacher's conditional probabilities from cosine similarities:
    each embedding divided by (its norm + eps), similarities scaled to [0, 1] by (cos + 1) / 2, each
    row normalised to sum to 1; the KL term is averaged over all B x B entries, eps inside the log.
    The embeddings may differ in width. The teacher's side carries no gradient.
    """

    Params = PKTParams

    def forward_train(self, student, teachers, batch):
        f_s = feats.features(student, batch.x)
        t = teachers.features_of(batch)[0].embedding
        p = self.params
        loss = pkt_loss(f_s.embedding, t, p.eps)
        return f_s.logits, {"ce": p.ce_weight * F.cross_entropy(f_s.logits, batch.y), "pkt": p.feat_weight * loss}


def _conditional(e, eps: float):
    e = e / (e.pow(2).sum(1, keepdim=True).sqrt() + eps)
    e = torch.nan_to_num(e, nan=0.0)  # an all-zero embedding: no direction, no similarity
    sim = (e @ e.t() + 1.0) / 2.0
    return sim / sim.sum(1, keepdim=True)


def pkt_loss(e_s, e_t, eps: float = 1e-7):
    """mean_{i,j} q_ij log((q_ij + eps) / (p_ij + eps)): the teacher's q, the student's p."""
    p, q = _conditional(e_s, eps), _conditional(e_t, eps)
    return (q * torch.log((q + eps) / (p + eps))).mean()
