"""Progress for people: bars that stay quiet when output is not a terminal (CI logs, pipes), and
durations written as a clock (elapsed time) or roughly (estimates)."""

from __future__ import annotations

import math
import os
import sys


def enabled() -> bool:
    if os.environ.get("KDBENCH_PROGRESS") in ("0", "1"):
        return os.environ["KDBENCH_PROGRESS"] == "1"
    return sys.stderr.isatty()


def bar(iterable, desc: str = "", total=None):
    from tqdm.auto import tqdm  # here: the reporter (the docs site's hook) reads durations without it

    return tqdm(iterable, desc=desc, total=total, leave=False, disable=not enabled(), dynamic_ncols=True)


def elapsed(seconds: float) -> str:
    """A duration as a clock, h:mm:ss."""
    m, s = divmod(round(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


def rough_duration(seconds: float) -> str:
    """A duration to the unit that matters: '40 s', '3.2 min', '1.5 h' ('?' when unknown)."""
    if math.isnan(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
