"""Per-model metrics beyond accuracy, from the logits the evaluation keeps for every
model-independent condition (clean, noise, corruptions: every model saw the same inputs).

    calibration.py  nll, brier, ece: how well the model's confidence matches its accuracy
    fidelity.py     agreement, kl_teacher: how closely a student follows its teacher

Each metric is a registered function: calibration `(logits (N, C), labels (N,)) -> float`,
fidelity `(logits, labels, teacher log-probabilities (N, C), temperature) -> float` (skipped
without a teacher). The
runner writes them, one row per model, seed, condition, level and metric, to model_metrics.csv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..registry import Registry


@dataclass(frozen=True)
class ModelMetric:
    name: str
    kind: str  # "calibration" or "fidelity" (needs the teacher's probabilities)
    lower_is_better: bool
    fn: Callable
    tempered: bool = False  # also reported at the distillation temperature (KL)

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip().split("\n")[0]


MODEL_METRICS: Registry[ModelMetric] = Registry("model metric")


def register_model_metric(name: str, kind: str, lower_is_better: bool, tempered: bool = False):
    def deco(fn):
        MODEL_METRICS.register(name)(ModelMetric(name, kind, lower_is_better, fn, tempered))
        return fn

    return deco


from . import calibration, fidelity  # noqa: E402,F401

__all__ = ["MODEL_METRICS", "ModelMetric", "register_model_metric"]
