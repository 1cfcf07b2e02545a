"""Distillation temperature: a constant, or a schedule from T0 to T1 over training."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from kdbench.util.strict import STRICT


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
