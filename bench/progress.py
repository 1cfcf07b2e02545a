"""Progress bars that stay quiet when output is not a terminal (CI logs, pipes)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def enabled() -> bool:
    if os.environ.get("KDBENCH_PROGRESS") in ("0", "1"):
        return os.environ["KDBENCH_PROGRESS"] == "1"
    return sys.stderr.isatty()


def bar(iterable, desc: str = "", total=None):
    return tqdm(iterable, desc=desc, total=total, leave=False, disable=not enabled(), dynamic_ncols=True)
