"""Level values as users write them: 0.03, 8/255 or '8/255' (YAML cannot do arithmetic), in suite
files and in gate tolerance keys alike. Kept free of torch so that the gate stays light."""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated

from pydantic import BeforeValidator


def parse_fraction(value):
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(Fraction(text)) if "/" in text else float(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"expected a number or a fraction such as '8/255', found '{value}'") from None
    return value


PixelValue = Annotated[float, BeforeValidator(parse_fraction)]
