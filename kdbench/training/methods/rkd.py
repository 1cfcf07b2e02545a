from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, FeatureMethod
from kdbench.util.lazy import lazy

torch = lazy("torch")
F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class RKDParams(CEWeightedParams):
    name: Literal["rkd"] = "rkd"
    distance_weight: float = Field(25.0, ge=0, description="weight of the distance term")
    angle_weight: float = Field(50.0, ge=0, description="weight of the angle term")
    squared: bool = Field(False, description="compare squared distances")
    eps: float = Field(1e-12, gt=0, description="floor of the squared distances before the root")


@register_method("rkd")
class RKD(FeatureMethod):
    """Relational KD (Park et al., 2019), distance and angle, on the pooled embeddings, as mdistiller:
    ce_weight * CE + distance_weight * huber(psi_D(s), psi_D(t)) + angle_weight * huber(psi_A(s), psi_A(t)).

    psi_D: the batch's pairwise Euclidean distances, each network's divided by its mean over
    distinct pairs; psi_A: cos of the angle at every vertex j of every triple (i, j, k),
    <e_ij, e_kj> with e the unit vectors between embeddings. huber: smooth L1 (beta 1), averaged.
    The teacher's side carries no gradient. The embeddings may differ in width.
    """

    Params = RKDParams

    def forward_train(self, student, teachers, batch):
        f_s = feats.features(student, batch.x)
        t = teachers.features_of(batch)[0].embedding
        s = f_s.embedding
        p = self.params
        distance = F.smooth_l1_loss(relative_distances(s, p.squared, p.eps), relative_distances(t, p.squared, p.eps))
        angle = F.smooth_l1_loss(angles(s), angles(t))
        return f_s.logits, {
            "ce": p.ce_weight * F.cross_entropy(f_s.logits, batch.y),
            "distance": p.distance_weight * distance,
            "angle": p.angle_weight * angle,
        }


def relative_distances(e, squared: bool, eps: float):
    """(B, B) pairwise distances over their mean off the diagonal (the diagonal is 0)."""
    sq = e.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp(min=eps)
    d = d if squared else d.sqrt()
    d = d * (1 - torch.eye(len(e), device=e.device, dtype=d.dtype))
    return d / d[d > 0].mean()


def angles(e):
    """(B^3,) cosines <u_ij, u_kj> with u_ij = (e_i - e_j) / |e_i - e_j| (0 when i = j)."""
    u = F.normalize(e[None, :, :] - e[:, None, :], p=2, dim=2)  # u[j, i] = unit(e_i - e_j)
    return torch.bmm(u, u.transpose(1, 2)).flatten()
