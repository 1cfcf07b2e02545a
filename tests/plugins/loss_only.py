"""A plugin with a loss only (kd on the teacher's top class), for the hash tests."""

from typing import Literal

import torch.nn.functional as F

import kdbench


class Top1Params(kdbench.MethodParams):
    name: Literal["kd_top1"] = "kd_top1"


@kdbench.register_method("kd_top1")
class Top1KD(kdbench.TeacherMethod):
    """CE(z_s, y) + CE(z_s, argmax z_t)."""

    Params = Top1Params

    def losses(self, z_s, z_t, labels, progress):
        return {"ce": F.cross_entropy(z_s, labels), "top1": F.cross_entropy(z_s, z_t.mean(0).argmax(1))}
