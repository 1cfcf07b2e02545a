from __future__ import annotations

from typing import Literal

from kdbench.training.methods import register_method
from kdbench.training.methods.base import FeatureMethod, PretrainParams
from kdbench.util.lazy import lazy

torch = lazy("torch")
nn = lazy("torch.nn")
F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class FSPParams(PretrainParams):
    name: Literal["fsp"] = "fsp"


@register_method("fsp")
class FSP(FeatureMethod):
    """Flow of solution procedure (Yim et al., 2017): the student's layers pre-trained on the teacher's FSP matrices,
    then ce_weight * CE.

    In RepDistiller's two stages:

    1. pre-training (`init_epochs`): the student's layers learn the teacher's FSP matrices, with
       no classification loss: sum_i mean (G_i(s) - G_i(t))^2, where G_i is the (C_i, C_i+1) matrix
       between consecutive features (the stem's output, then each stage), the larger of the two
       average-pooled to the smaller: G_i[a, b] = mean_hw f_i[a] f_i+1[b].
    2. training: ce_weight * CE alone (RepDistiller's beta multiplies a zero term here).

    Features are paired from the deepest, and FSP needs the two networks to have the same
    channels at each paired feature (checked before training). The teacher's side carries no
    gradient.
    """

    Params = FSPParams

    def setup(self, student, teachers, labels):
        s = _chain(feats.feature_shapes(student, stem=True))
        t = _chain(feats.feature_shapes(teachers.models[0], stem=True))
        self.n = min(len(s), len(t))
        s_c, t_c = [f.shape[1] for f in s[-self.n :]], [f.shape[1] for f in t[-self.n :]]
        if s_c != t_c:
            raise feats.FeatureError(
                f"fsp: the student's and the teacher's channels differ ({s_c} against {t_c}, the stem's output "
                f"then each stage, the last {self.n}); FSP compares matrices between them, so they must agree: "
                f"choose networks of the same widths (resnet8 with resnet20, say)"
            )
        return None

    def pretrain_setup(self, student):
        return student

    def pretrain_losses(self, student, teachers, batch):
        s = _chain(feats.features(student, batch.x, stem=True))[-self.n :]
        with torch.no_grad():  # the teachers' feature cache holds no stems: the teacher runs here
            t = _chain(feats.features(teachers.models[0], batch.x, stem=True))[-self.n :]
        return {"fsp": fsp_loss(s, t)}

    def forward_train(self, student, teachers, batch):
        logits = student(batch.x)
        return logits, {"ce": self.params.ce_weight * F.cross_entropy(logits, batch.y)}


def _chain(f) -> list:
    return [f.stem, *f.stages]


def fsp_matrices(chain) -> list:
    """G_i = mean_hw f_i[:, a] f_i+1[:, b], (B, C_i, C_i+1), the larger map average-pooled to the smaller."""
    out = []
    for bottom, top in zip(chain, chain[1:]):
        bottom, top = feats.match_sizes(bottom, top)
        out.append(bottom.flatten(2) @ top.flatten(2).transpose(1, 2) / bottom.shape[2] / bottom.shape[3])
    return out


def fsp_loss(chain_s, chain_t):
    """sum over consecutive pairs of mean (G(s) - G(t))^2."""
    return sum((g_s - g_t).pow(2).mean() for g_s, g_t in zip(fsp_matrices(chain_s), fsp_matrices(chain_t)))
