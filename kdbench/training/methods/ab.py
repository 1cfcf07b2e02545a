from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import FeatureMethod, PretrainParams
from kdbench.training.methods.fitnets import conv_regressor
from kdbench.util.lazy import lazy

torch = lazy("torch")
nn = lazy("torch.nn")
F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class ABParams(PretrainParams):
    name: Literal["ab"] = "ab"
    margin: float = Field(1.0, gt=0, description="the activation boundary's margin mu (1.0)")


@register_method("ab")
class AB(FeatureMethod):
    """Activation-boundary distillation (Heo et al., 2019): the student's layers pre-trained on the teacher's activation
    boundaries, then ce_weight * CE.

    In RepDistiller's two stages:

    1. pre-training (`init_epochs`): the student's layers and a connector per stage pair (a
       convolution and BatchNorm to the teacher's channels and size; none where they agree) learn
       the teacher's activation boundaries on the stages' pre-activations (the input of the ReLU
       each stage ends in), with no classification loss: sum_i w_i * 3/1000 * L_i / B, where
       L_i = sum (r(s) + mu)^2 [r(s) > -mu, t <= 0] + (r(s) - mu)^2 [r(s) <= mu, t > 0] and
       w_i = 2^(i - n + 1), the deepest pair weighted 1.
    2. training: ce_weight * CE alone (RepDistiller's beta multiplies a zero term here); the
       connectors are dropped.

    Stages are paired from the deepest; the teacher's side carries no gradient.
    """

    Params = ABParams

    def setup(self, student, teachers, labels):
        s_stages = feats.feature_shapes(student).stages
        t_stages = feats.feature_shapes(teachers.models[0]).stages
        n = min(len(s_stages), len(t_stages))
        self.connectors = nn.ModuleList(
            nn.Identity()
            if s.shape[1:] == t.shape[1:]
            else conv_regressor(
                tuple(s.shape[1:]), tuple(t.shape[1:]), relu=False, who="ab", advice="give feature_stages"
            )
            for s, t in zip(s_stages[-n:], t_stages[-n:])
        )
        return None

    def pretrain_setup(self, student):
        return nn.ModuleList([student, self.connectors])

    def pretrain_losses(self, student, teachers, batch):
        n = len(self.connectors)
        s = feats.features(student, batch.x, preact=True).stages[-n:]
        with torch.no_grad():
            t = feats.features(teachers.models[0], batch.x, preact=True).stages[-n:]
        sources = [c(f) for c, f in zip(self.connectors, s)]
        return {"boundary": activation_boundary_loss(sources, t, self.params.margin)}

    def forward_train(self, student, teachers, batch):
        logits = student(batch.x)
        return logits, {"ce": self.params.ce_weight * F.cross_entropy(logits, batch.y)}


def alternative_l2(source, target, margin: float):
    """sum (s + mu)^2 [s > -mu, t <= 0] + (s - mu)^2 [s <= mu, t > 0]: the boundary's hinge, squared."""
    off = ((source > -margin) & (target <= 0)).to(source.dtype)
    on = ((source <= margin) & (target > 0)).to(source.dtype)
    return ((source + margin).pow(2) * off + (source - margin).pow(2) * on).sum()


def activation_boundary_loss(sources, targets, margin: float = 1.0):
    """sum_i 2^(i - n + 1) * 3/1000 * alternative_l2(s_i, t_i) / B, pairs shallow to deep."""
    n, b = len(sources), sources[0].shape[0]
    return sum(
        2.0 ** (i - n + 1) * alternative_l2(s, t, margin) / b / 1000 * 3
        for i, (s, t) in enumerate(zip(sources, targets))
    )
