from __future__ import annotations

from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import Method, MethodParams
from kdbench.util.lazy import lazy

F = lazy("torch.nn.functional")


class BaselineParams(MethodParams):
    name: Literal["baseline"] = "baseline"
    temperature: float = Field(
        1.0,
        gt=0,
        description="softmax temperature in training: CE on z / T (T = 100 is defensive distillation's teacher)",
    )


@register_method("baseline")
class Baseline(Method):
    """Cross-entropy on hard labels, CE(z / T, y): the twin every distilled student is held against.

    T = 1 is the ordinary baseline. A high T trains large logits, so at test time (T = 1) the
    softmax saturates: Papernot et al.'s (2016) defensive-distillation teacher."""

    role = "baseline"
    Params = BaselineParams

    def losses(self, student_logits, teacher_logits, labels, progress):
        t = self.params.temperature
        return {"ce": F.cross_entropy(student_logits if t == 1 else student_logits / t, labels)}
