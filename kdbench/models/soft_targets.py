"""Soft targets: the teachers' softened probabilities (`teacher_log_probs`) at a temperature that is
a constant or a schedule from T0 to T1 over training (`Temperature`, `temperature_at`). Training's
methods and evaluation's fidelity metrics both read them."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from kdbench.util.lazy import lazy
from kdbench.util.strict import STRICT

torch = lazy("torch")
F = lazy("torch.nn.functional")


class TemperatureSchedule(BaseModel):
    model_config = STRICT
    schedule: Literal["constant", "linear", "cosine"]
    start: float = Field(gt=0, description="T at the first epoch")
    end: float = Field(gt=0, description="T at the last epoch")


def _temperature(value):
    """A number > 0 or a schedule mapping, each with its own plain error (pydantic's union errors
    would name both branches by their internal types)."""
    if isinstance(value, TemperatureSchedule):
        return value
    if isinstance(value, dict):
        try:
            return TemperatureSchedule.model_validate(value)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(p) for p in e["loc"])
            if e["type"] == "extra_forbidden":
                raise ValueError(
                    f"unknown key '{where}' in a temperature schedule; expected schedule, start, end"
                ) from None
            raise ValueError(f"temperature schedule {where}: {e['msg'].removeprefix('Value error, ')}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a temperature > 0 or a schedule {{schedule, start, end}} (found: {value!r:.60})")
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(
            f"a temperature must be a finite number > 0 (found: {value}); T = 0 divides by zero, T < 0 inverts the "
            "objective"
        )
    return float(value)


Temperature = Annotated[Union[float, TemperatureSchedule], BeforeValidator(_temperature)]


def temperature_at(t: Temperature, progress: float) -> float:
    """T at `progress` in [0, 1] (0: first epoch, 1: last epoch)."""
    if not isinstance(t, TemperatureSchedule):
        return float(t)
    if t.schedule == "constant":
        return t.start
    if t.schedule == "linear":
        return t.start + (t.end - t.start) * progress
    return t.end + (t.start - t.end) * 0.5 * (1.0 + math.cos(math.pi * progress))


EnsembleMode = Literal["mean_probs", "mean_logits"]


def teacher_log_probs(teacher_logits: torch.Tensor, temperature: float, mode: EnsembleMode) -> torch.Tensor:
    """log p_teacher at temperature T for K stacked teachers (K, B, C) -> (B, C).

    mean_probs:  p = (1/K) sum_k softmax(z_k / T)   (averaging the teachers' softened predictions)
    mean_logits: p = softmax(((1/K) sum_k z_k) / T) (one teacher made of the averaged logits)
    """
    if teacher_logits.dim() == 2:
        teacher_logits = teacher_logits.unsqueeze(0)
    if mode == "mean_logits":
        return F.log_softmax(teacher_logits.mean(0) / temperature, dim=-1)
    k = teacher_logits.shape[0]
    # log of a mean of probabilities, kept in log space so that confident teachers do not underflow
    return torch.logsumexp(F.log_softmax(teacher_logits / temperature, dim=-1), dim=0) - math.log(k)
