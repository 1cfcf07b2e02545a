"""`import kdbench`: the public Python API (the package's folder is `bench/`; see bench/api.py)."""

from bench import __version__
from bench.api import (
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

__all__ = ["__version__", "Suite", "SuiteError", "load_suite", "run", "read_run", "compare", "verdicts", "report", "export", "gate"]
