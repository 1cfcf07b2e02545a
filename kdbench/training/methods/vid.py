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


class VIDParams(CEWeightedParams):
    name: Literal["vid"] = "vid"
    feat_weight: float = Field(
        1.0, ge=0, description="weight of the summed negative log-likelihoods (RepDistiller's beta)"
    )
    init_pred_var: float = Field(5.0, gt=0, description="each channel's variance at the start")
    eps: float = Field(1e-5, gt=0, description="the variance's floor, added to softplus")


@register_method("vid")
class VID(FeatureMethod):
    """Variational information distillation (Ahn et al., 2019), on every stage pair, as RepDistiller
    runs it on CIFAR: ce_weight * CE + feat_weight * sum_stages mean 0.5 * ((mu(f_s) - f_t)^2 / var
    + log var).

    mu is a regressor per stage pair (1x1 conv to the teacher's channels, ReLU, 1x1, ReLU, 1x1, no
    biases), var = softplus(a) + eps with one learned a per teacher channel, starting at
    init_pred_var. Of two stages of different sizes the larger is average-pooled to the smaller.
    The regressors and variances train with the student and are dropped afterwards; the teacher's
    side carries no gradient.
    """

    Params = VIDParams

    def setup(self, student, teachers, labels):
        s_stages, t_stages = feats.feature_shapes(student).stages, feats.feature_shapes(teachers.models[0]).stages
        pairs = zip(reversed(s_stages), reversed(t_stages))  # from the deepest
        p = self.params
        self.heads = nn.ModuleList(variational_head(s.shape[1], t.shape[1], p.init_pred_var, p.eps) for s, t in pairs)
        return self.heads

    def forward_train(self, student, teachers, batch):
        f_s = feats.features(student, batch.x)
        f_t = teachers.features_of(batch)[0]
        p = self.params
        pairs = zip(self.heads, reversed(f_s.stages), reversed(f_t.stages))
        nll = sum(vid_loss(head, s, t, p.eps) for head, s, t in pairs)
        return f_s.logits, {"ce": p.ce_weight * F.cross_entropy(f_s.logits, batch.y), "vid": p.feat_weight * nll}


def variational_head(s_channels: int, t_channels: int, init_pred_var: float, eps: float):
    """A stage pair's Gaussian q(f_t | f_s): `regressor` (the mean) and `log_scale` (a per channel,
    var = softplus(a) + eps, so that var = init_pred_var at the start)."""
    head = nn.Module()
    head.regressor = nn.Sequential(
        nn.Conv2d(s_channels, t_channels, 1, bias=False),
        nn.ReLU(),
        nn.Conv2d(t_channels, t_channels, 1, bias=False),
        nn.ReLU(),
        nn.Conv2d(t_channels, t_channels, 1, bias=False),
    )
    head.log_scale = nn.Parameter(torch.full((t_channels,), math.log(math.expm1(init_pred_var - eps))))
    return head


def vid_loss(head, f_s, f_t, eps: float):
    """mean over every element of 0.5 * ((mu - f_t)^2 / var + log var), sizes matched by pooling."""
    f_s, f_t = feats.match_sizes(f_s, f_t)
    mean = head.regressor(f_s)
    var = (F.softplus(head.log_scale) + eps).view(1, -1, 1, 1)
    return (0.5 * ((mean - f_t).pow(2) / var + torch.log(var))).mean()
