"""A plugin: a network and a distillation loss of one's own, registered with kdbench's decorators."""

from typing import Literal

import torch.nn.functional as F
from pydantic import Field
from torch import nn

import kdbench


@kdbench.register_model("refnet")
def refnet(num_classes: int = 10) -> nn.Module:
    """cnn_small's blocks, max-pooled after the first two only, then global average pooling."""
    conv = [nn.Conv2d(c, d, 3, padding=1, bias=False) for c, d in ((3, 32), (32, 64), (64, 128))]
    blocks = [nn.Sequential(c, nn.BatchNorm2d(c.out_channels), nn.ReLU()) for c in conv]
    pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes))
    return nn.Sequential(blocks[0], nn.MaxPool2d(2), blocks[1], nn.MaxPool2d(2), blocks[2], pool)


class TopKParams(kdbench.MethodParams):
    name: Literal["kd_topk"] = "kd_topk"
    temperature: float = Field(4.0, gt=0, description="softmax temperature T")
    k: int = Field(3, ge=1, description="the teacher's top-k classes kept in the soft target")


@kdbench.register_method("kd_topk")
class TopKKD(kdbench.TeacherMethod):
    """CE + T^2 * KL(p_t^T kept to the teacher's top-k classes, renormalised || p_s^T)."""

    Params = TopKParams

    def losses(self, z_s, z_t, labels, progress):
        t, z_t = self.params.temperature, z_t.mean(0)  # (B, C): one teacher, or the mean of several
        keep = z_t.topk(min(self.params.k, z_t.shape[1]), dim=1).indices
        masked = z_t.new_full(z_t.shape, float("-inf")).scatter(1, keep, z_t.gather(1, keep))
        soft = F.kl_div(F.log_softmax(z_s / t, 1), F.softmax(masked / t, 1), reduction="batchmean")
        return {"ce": F.cross_entropy(z_s, labels), "kd_topk": t * t * soft}
