from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, FeatureMethod
from kdbench.util.lazy import lazy

nn = lazy("torch.nn")
F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class FitNetsParams(CEWeightedParams):
    name: Literal["fitnets"] = "fitnets"
    feat_weight: float = Field(100.0, ge=0, description="weight of the hint loss")
    hint_stage: int = Field(
        -2,
        ge=-16,
        le=-1,
        description="the stage giving the hint, counted on each network from its deepest (-1); "
        "-2 is mdistiller's hint layer 2 on the CIFAR ResNets",
    )


@register_method("fitnets")
class FitNets(FeatureMethod):
    """FitNets (Romero et al., 2015), trained jointly as mdistiller does:
    ce_weight * CE + feat_weight * MSE(r(f_s), f_t), f at `hint_stage` of each network.

    r is mdistiller's connector (ConvReg): a convolution from the student's channels and size to
    the teacher's (3x3 stride 2 to halve, 4x4 transposed stride 2 to double, else a valid kxk
    conv), then BN and ReLU. It is trained with the student and dropped afterwards.
    """

    Params = FitNetsParams

    def setup(self, student, teachers, labels):
        s_stages, t_stages = feats.feature_shapes(student).stages, feats.feature_shapes(teachers.models[0]).stages
        k = self.params.hint_stage
        if -k > min(len(s_stages), len(t_stages)):
            raise feats.FeatureError(
                f"fitnets: hint_stage {k} counts back past the first stage: the student has {len(s_stages)} stages, "
                f"the teacher {len(t_stages)}; give -1 to -{min(len(s_stages), len(t_stages))}"
            )
        s, t = s_stages[k], t_stages[k]
        self.connector = conv_regressor(tuple(s.shape[1:]), tuple(t.shape[1:]))
        return self.connector

    def forward_train(self, student, teachers, batch):
        f_s = feats.features(student, batch.x)
        f_t = teachers.features_of(batch)[0]
        hint = self.connector(f_s.stages[self.params.hint_stage])
        p = self.params
        return f_s.logits, {
            "ce": p.ce_weight * F.cross_entropy(f_s.logits, batch.y),
            "hint": p.feat_weight * F.mse_loss(hint, f_t.stages[p.hint_stage]),
        }


def conv_regressor(
    s_shape: tuple[int, int, int],
    t_shape: tuple[int, int, int],
    relu: bool = True,
    who: str = "fitnets",
    advice: str = "choose another hint_stage",
):
    """mdistiller's ConvReg from a (C, H, W) student feature to a teacher's (AB's: no ReLU)."""
    (s_c, s_h, s_w), (t_c, t_h, t_w) = s_shape, t_shape
    if s_h == 2 * t_h:
        conv = nn.Conv2d(s_c, t_c, kernel_size=3, stride=2, padding=1)
    elif 2 * s_h == t_h:
        conv = nn.ConvTranspose2d(s_c, t_c, kernel_size=4, stride=2, padding=1)
    elif s_h >= t_h and s_w >= t_w:
        conv = nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
    else:
        raise feats.FeatureError(
            f"{who}: no connector from a {s_h}x{s_w} student feature to a {t_h}x{t_w} teacher feature; {advice}"
        )
    return nn.Sequential(conv, nn.BatchNorm2d(t_c), *([nn.ReLU(inplace=True)] if relu else []))
