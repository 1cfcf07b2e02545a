from __future__ import annotations

from typing import Literal

import torch.nn.functional as F

from . import register_method
from .base import Method, MethodParams


class BaselineParams(MethodParams):
    name: Literal["baseline"] = "baseline"


@register_method("baseline")
class Baseline(Method):
    """Cross-entropy on hard labels: the twin every distilled student is held against."""

    name = "baseline"
    Params = BaselineParams

    def losses(self, student_logits, teacher_logits, labels, progress):
        return {"ce": F.cross_entropy(student_logits, labels)}
