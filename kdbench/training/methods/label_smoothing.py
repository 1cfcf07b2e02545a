from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import Method, MethodParams
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")


class LabelSmoothingParams(MethodParams):
    name: Literal["label_smoothing"] = "label_smoothing"
    smoothing: float = Field(0.1, ge=0, lt=1, description="mass spread uniformly over all classes")


@register_method("label_smoothing")
class LabelSmoothing(Method):
    """The control for KD: soft targets with no teacher (Szegedy et al., 2016; torch's label_smoothing)."""

    Params = LabelSmoothingParams

    def losses(self, student_logits, teacher_logits, labels, progress):
        return {"ce_smoothed": F.cross_entropy(student_logits, labels, label_smoothing=self.params.smoothing)}
