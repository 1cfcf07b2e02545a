"""Level values as users write them: 0.03, 8/255 or '8/255' (YAML cannot do arithmetic), in suite
files and in gate tolerance keys alike. Kept free of torch so that the gate stays light."""

from __future__ import annotations

import math
import numbers
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator


def parse_fraction(value):
    """'8/255', '0.5/255', '2e-3' or 0.03 as a float; numerator and denominator are any numbers
    float() reads (decimals, scientific notation), the result must be finite."""
    if isinstance(value, str):
        text = value.strip()
        try:
            if "/" in text:
                num, _, den = text.partition("/")
                out = float(num) / float(den)
            else:
                out = float(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"expected a number or a fraction such as '8/255', found '{value}'") from None
        if not math.isfinite(out):
            raise ValueError(f"expected a finite number, found '{value}'")
        return out
    return value


def in_pixel_units(value: float) -> float:
    if not 0 <= value <= 1:  # NaN fails too
        hint = f"; for {value:g} of 255 levels write {value:g}/255" if 1 < value <= 255 else ""
        raise ValueError(f"expected a value in [0, 1] pixel units (found: {value}){hint}")
    return value


# A sigma, an epsilon or a step in [0, 1] pixel units (NaN and infinities refused).
PixelValue = Annotated[float, BeforeValidator(parse_fraction), AfterValidator(in_pixel_units)]
# A number as users write it, range checked by its owner (an attack radius: by its norm).
Number = Annotated[float, BeforeValidator(parse_fraction)]

# An L2 radius is the Euclidean norm of the whole perturbation in [0, 1] pixel units: 0.5 on
# CIFAR-10 and 3.0 on ImageNet in RobustBench. Far above those every image falls, and a value past
# this bound is almost surely a radius in 0-255 levels or a per-pixel one.
L2_MAX = 20.0


def in_radius_units(value: float, norm: str) -> float:
    """An attack radius or step checked for its norm: Linf in [0, 1] pixel units, L2 in [0, 20]."""
    if norm != "L2":
        return in_pixel_units(value)
    if not 0 <= value <= L2_MAX:
        raise ValueError(
            f"an L2 radius or step of {value:g} is outside [0, {L2_MAX:g}]: L2 values are the Euclidean "
            "norm of the whole perturbation in [0, 1] pixel units (RobustBench: 0.5 on CIFAR-10, 3.0 on "
            "ImageNet), not 0-255 levels"
        )
    return value


def level_str(level) -> str:
    """A level as metrics.csv writes it: '' for none, an integer as such, else 6 significant digits."""
    if level is None or (isinstance(level, float) and math.isnan(level)) or level == "":
        return ""
    if isinstance(level, numbers.Integral) and not isinstance(level, bool):
        return str(int(level))
    return format(float(level), ".6g")


def level_value(level: str) -> float:
    """Numeric sort key of a stored level ('' sorts first)."""
    if level in ("", None):
        return -math.inf
    try:
        return float(level)
    except ValueError:
        return math.inf
