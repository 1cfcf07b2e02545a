"""kdbench: does knowledge distillation make students more robust than their hard-label twins?

The public Python API (kdbench.api): load a suite, run it, read, report and export the run,
compare two runs, gate one against a baseline.
"""

from kdbench.api import (
    Suite,
    SuiteError,
    compare,
    export,
    gate,
    load_suite,
    read_run,
    report,
    run,
    verdicts,
)
from kdbench.version import __version__

__all__ = [
    "__version__",
    "Suite",
    "SuiteError",
    "load_suite",
    "run",
    "read_run",
    "compare",
    "verdicts",
    "report",
    "export",
    "gate",
]
