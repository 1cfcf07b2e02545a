from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import FeatureMethod, PretrainParams
from kdbench.util.lazy import lazy

torch = lazy("torch")
nn = lazy("torch.nn")
F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class FTParams(PretrainParams):
    name: Literal["ft"] = "ft"
    feat_weight: float = Field(200.0, ge=0, description="weight of the factor loss (RepDistiller's beta, 200)")
    rate: float = Field(0.5, gt=0, le=4, description="the paraphrase rate k: factor channels = k x the teacher's (0.5)")
    init_lr: float | None = Field(
        0.01, gt=0, description="the paraphraser's learning rate (RepDistiller's 0.01 for CIFAR ResNets and WRNs)"
    )


@register_method("ft")
class FT(FeatureMethod):
    """Factor transfer (Kim et al., 2018) on the last stage: a paraphraser pre-trained on the teacher, then ce_weight *
    CE + feat_weight * mean |u(T(f_s)) - u(P(f_t))|.

    In RepDistiller's two stages:

    1. pre-training (`init_epochs`): a paraphraser (three 3x3 convolutions to k x the teacher's
       channels, then three transposed ones back, LeakyReLU 0.1, no BatchNorm) learns to
       reconstruct the teacher's last-stage features, MSE; the student does not train.
    2. training: ce_weight * CE + feat_weight * mean |u(T(f_s)) - u(P(f_t))|, where P is the
       paraphraser's encoder (frozen, eval mode), T the student's translator (three 3x3
       convolutions with BatchNorm, trained with the student) and u(v) = v / ||v||_2 of the
       flattened factor: the paper's L1 factor loss, as torchdistill's FTLoss computes it (the
       larger factor average-pooled to the smaller's size first, as RepDistiller does).
    """

    Params = FTParams

    def setup(self, student, teachers, labels):
        s = feats.feature_shapes(student).stages[-1].shape[1]
        t = feats.feature_shapes(teachers.models[0]).stages[-1].shape[1]
        factor = int(t * self.params.rate)
        self.paraphraser = paraphraser(t, factor)
        self.translator = _encoder(s, factor, batch_norm=True)
        return self.translator

    def pretrain_setup(self, student):
        return self.paraphraser

    def pretrain_losses(self, student, teachers, batch):
        f_t = teachers.features_of(batch)[0].stages[-1]
        return {"reconstruction": F.mse_loss(self.paraphraser(f_t), f_t)}

    def forward_train(self, student, teachers, batch):
        f_s = feats.features(student, batch.x)
        with torch.no_grad():
            factor_t = self.paraphraser.encoder(teachers.features_of(batch)[0].stages[-1])
        p = self.params
        loss = factor_loss(self.translator(f_s.stages[-1]), factor_t)
        return f_s.logits, {"ce": p.ce_weight * F.cross_entropy(f_s.logits, batch.y), "factor": p.feat_weight * loss}


def _block(conv, channels: int, batch_norm: bool):
    return [conv, *([nn.BatchNorm2d(channels)] if batch_norm else []), nn.LeakyReLU(0.1)]


def _encoder(c_in: int, c_out: int, batch_norm: bool):
    return nn.Sequential(
        *_block(nn.Conv2d(c_in, c_in, 3, 1, 1), c_in, batch_norm),
        *_block(nn.Conv2d(c_in, c_out, 3, 1, 1), c_out, batch_norm),
        *_block(nn.Conv2d(c_out, c_out, 3, 1, 1), c_out, batch_norm),
    )


def paraphraser(channels: int, factor: int):
    """RepDistiller's Paraphraser: `encoder` to the factor, `decoder` back; called, it reconstructs."""
    from collections import OrderedDict

    decoder = nn.Sequential(
        *_block(nn.ConvTranspose2d(factor, factor, 3, 1, 1), factor, False),
        *_block(nn.ConvTranspose2d(factor, channels, 3, 1, 1), channels, False),
        *_block(nn.ConvTranspose2d(channels, channels, 3, 1, 1), channels, False),
    )
    return nn.Sequential(OrderedDict(encoder=_encoder(channels, factor, batch_norm=False), decoder=decoder))


def factor_loss(factor_s, factor_t):
    """mean |u(factor_s) - u(factor_t)| over batch and elements, u = L2-normalised flattened factor;
    of two factors of different sizes the larger is average-pooled to the smaller (RepDistiller)."""
    factor_s, factor_t = feats.match_sizes(factor_s, factor_t)
    return F.l1_loss(F.normalize(factor_s.flatten(1), dim=1), F.normalize(factor_t.flatten(1), dim=1))
