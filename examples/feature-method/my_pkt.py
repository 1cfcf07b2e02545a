"""A feature method as a plugin: PKT (Passalis & Tefas, 2018) on the pooled embeddings."""

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

import kdbench


class MyPKTParams(kdbench.MethodParams):
    name: Literal["my_pkt"] = "my_pkt"
    weight: float = Field(30000.0, ge=0, description="weight of the PKT term")


def conditional(e, eps=1e-7):
    """Each row: the cosine similarities to the batch, scaled to [0, 1], as probabilities."""
    e = e / (e.norm(dim=1, keepdim=True) + eps)
    sim = (e @ e.t() + 1) / 2
    return sim / sim.sum(1, keepdim=True)


@kdbench.register_method("my_pkt")
class MyPKT(kdbench.FeatureMethod):
    """CE + weight * KL(q_teacher || p_student) of the embeddings' similarity distributions."""

    Params = MyPKTParams

    def forward_train(self, student, teachers, batch):
        s = kdbench.features(student, batch.x)  # logits, stages, embedding: with gradients
        t = teachers.features_of(batch)[0]  # the one teacher's, without gradients
        p, q = conditional(s.embedding), conditional(t.embedding)
        pkt = (q * torch.log((q + 1e-7) / (p + 1e-7))).mean()
        return s.logits, {"ce": F.cross_entropy(s.logits, batch.y), "pkt": self.params.weight * pkt}
