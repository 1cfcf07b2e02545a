"""Reports: a run directory becomes one self-contained HTML page or a Markdown summary.

keys.py         the metrics in reading order, accuracy tables, per-example lookup
pairs.py        each compare pair: method-level tests, Holm, MDD, the verdict words
tables.py       everything a report shows, built once (`build(run) -> ReportData`)
calibration.py  the calibration and fidelity table
verdicts.py     the sentences "at a glance"
format.py       numbers and labels as text
rows.py         the tables as display strings, shared by both renderers
plots.py        matplotlib figures as SVG data URIs
html.py         the Jinja2 page (templates/report.html.j2), autoescaped, no scripts, nothing fetched
markdown.py     the same tables in Markdown
"""

from __future__ import annotations

from pathlib import Path

from kdbench.reports.tables import build
from kdbench.results.checks import load_run
from kdbench.util.atomic import write_text
from kdbench.util.names import run_stem

FORMATS = ("html", "md")


def render(run_dir, fmt: str = "html") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    data = build(load_run(run_dir))
    if fmt == "html":
        from kdbench.reports.html import render_html

        return render_html(data)
    from kdbench.reports.markdown import render_markdown

    return render_markdown(data)


def default_output(run_dir, fmt: str = "html", root="reports") -> Path:
    """reports/<suite>-<run-id>.<fmt>: the report's name for results/<suite>/<run-id>/ (exports
    name theirs after the same stem, kdbench.util.names.run_stem)."""
    return Path(root) / f"{run_stem(run_dir)}.{fmt}"


def write_report(run_dir, out=None, fmt: str = "html") -> Path:
    text = render(run_dir, fmt)
    out = Path(out) if out is not None else default_output(run_dir, fmt)
    write_text(out, text)
    return out
