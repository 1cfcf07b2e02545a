"""Paper-ready exports of a run: `kdbench export RUN_DIR --format latex|csv|json|robustbench`.

    headline.py     the headline comparison as one tidy table (what csv and latex write)
    csv_table.py    that table as CSV, for pandas and R
    latex_table.py  that table as booktabs LaTeX through pandas' Styler, ready to \\input
    report_json.py  everything the report shows, machine-readable
    robustbench.py  one RobustBench model-info JSON per network, their field names and number format

Each format is one module that registers a writer `(ReportData, out: Path) -> list[Path]`.
"""

from __future__ import annotations

from pathlib import Path

from kdbench.registry import Registry
from kdbench.util.names import run_stem

EXPORTERS: Registry = Registry("export format")
register_exporter = EXPORTERS.register

# what -o names by default: a file with this extension, or (None) a directory
EXTENSIONS = {"csv": "csv", "latex": "tex", "json": "json", "robustbench": None}

EXPORTERS.declare_from_sources(
    __name__, __path__, "register_exporter", first=["csv_table", "latex_table", "report_json", "robustbench"]
)


def default_output(run_dir, fmt: str, root="reports") -> Path:
    """reports/<suite>-<run-id>.<ext> (a directory <suite>-<run-id>-robustbench for RobustBench's files)."""
    stem = run_stem(run_dir)
    ext = EXTENSIONS[fmt]
    return Path(root) / (f"{stem}.{ext}" if ext else f"{stem}-{fmt}")


def export(run_dir, fmt: str, out=None) -> list[Path]:
    """Write `fmt` for the run at `run_dir`; returns the files written."""
    from kdbench.reports.tables import build
    from kdbench.results.checks import load_run

    writer = EXPORTERS.get(fmt)
    data = build(load_run(run_dir))
    return writer(data, Path(out) if out is not None else default_output(run_dir, fmt))


__all__ = ["EXPORTERS", "EXTENSIONS", "default_output", "export", "register_exporter"]
