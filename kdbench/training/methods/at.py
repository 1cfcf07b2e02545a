from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, FeatureMethod
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class ATParams(CEWeightedParams):
    name: Literal["at"] = "at"
    feat_weight: float = Field(1000.0, ge=0, description="weight of the attention loss")
    p: float = Field(2.0, gt=0, description="power of the activations in the attention map")


@register_method("at")
class AT(FeatureMethod):
    """Attention transfer (Zagoruyko & Komodakis, 2017), as mdistiller computes it:
    ce_weight * CE + feat_weight * sum_stages mean_{b,j} (a_s - a_t)^2, a = normalize(mean_c f^p).

    The attention map of a stage is the channel mean of its activations to the power p, flattened
    and L2-normalised per image; of two stages of different sizes the larger is average-pooled to
    the smaller first. Stages pair from the deepest (all three on the CIFAR ResNets).
    """

    Params = ATParams

    def forward_train(self, student, teachers, batch):
        f_s = feats.features(student, batch.x)
        f_t = teachers.features_of(batch)[0]
        p = self.params
        pairs = zip(reversed(f_s.stages), reversed(f_t.stages))  # zip stops at the shorter
        at = sum(attention_loss(s, t, p.p) for s, t in pairs)
        return f_s.logits, {"ce": p.ce_weight * F.cross_entropy(f_s.logits, batch.y), "attention": p.feat_weight * at}


def attention_map(f, p: float):
    return F.normalize(f.pow(p).mean(1).flatten(1))


def attention_loss(f_s, f_t, p: float):
    """One stage pair's squared difference of attention maps, averaged over images and positions."""
    f_s, f_t = feats.match_sizes(f_s, f_t)
    return (attention_map(f_s, p) - attention_map(f_t, p)).pow(2).mean()
