from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, FeatureMethod
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class NSTParams(CEWeightedParams):
    name: Literal["nst"] = "nst"
    feat_weight: float = Field(50.0, ge=0, description="weight of the summed MMD terms (RepDistiller's beta)")


@register_method("nst")
class NST(FeatureMethod):
    """Neuron selectivity transfer (Huang & Wang, 2017), on every stage pair, as RepDistiller runs it
    on CIFAR: ce_weight * CE + feat_weight * sum_stages MMD^2 with the polynomial kernel
    k(a, b) = (a . b)^2 between channels.

    Each channel's activation map is flattened and L2-normalised; MMD^2 = mean k(t, t) + mean k(s, s)
    - 2 mean k(s, t), each mean over the batch and every pair of channels. Of two stages of
    different sizes the larger is average-pooled to the smaller; the channel counts may differ. The
    teacher's side carries no gradient.
    """

    Params = NSTParams

    def forward_train(self, student, teachers, batch):
        f_s = feats.features(student, batch.x)
        f_t = teachers.features_of(batch)[0]
        p = self.params
        mmd = sum(nst_loss(s, t) for s, t in zip(reversed(f_s.stages), reversed(f_t.stages)))
        return f_s.logits, {"ce": p.ce_weight * F.cross_entropy(f_s.logits, batch.y), "nst": p.feat_weight * mmd}


def _poly(a, b):
    """(B, C_b, C_a): (a_i . b_j)^2 between the channels of a (B, C_a, N) and b (B, C_b, N)."""
    return (b @ a.transpose(1, 2)).pow(2)


def nst_loss(f_s, f_t):
    """The squared MMD between the two stages' channel activations, polynomial kernel of degree 2."""
    f_s, f_t = feats.match_sizes(f_s, f_t)
    s = F.normalize(f_s.flatten(2), dim=2)
    t = F.normalize(f_t.flatten(2), dim=2)
    return _poly(t, t).mean().detach() + _poly(s, s).mean() - 2 * _poly(s, t).mean()
