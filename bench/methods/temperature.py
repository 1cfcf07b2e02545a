"""Distillation temperature: a constant, or a schedule from T0 to T1 over training."""

from __future__ import annotations

import math
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class TemperatureSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedule: Literal["constant", "linear", "cosine"]
    start: float = Field(gt=0, description="T at the first epoch")
    end: float = Field(gt=0, description="T at the last epoch")


Temperature = Union[float, TemperatureSchedule]


def temperature_at(t: Temperature, progress: float) -> float:
    """T at `progress` in [0, 1] (0: first epoch, 1: last epoch)."""
    if not isinstance(t, TemperatureSchedule):
        return float(t)
    if t.schedule == "constant":
        return t.start
    if t.schedule == "linear":
        return t.start + (t.end - t.start) * progress
    return t.end + (t.start - t.end) * 0.5 * (1.0 + math.cos(math.pi * progress))
