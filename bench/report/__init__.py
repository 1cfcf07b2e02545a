"""Reports: a run directory becomes one self-contained HTML page or a Markdown summary.

    tables.py    the numbers (accuracies, method-level differences, tests, intervals) as DataFrames
    rows.py      those numbers as display strings, shared by both renderers
    plots.py     matplotlib figures as SVG data URIs
    html.py      the Jinja2 page (templates/report.html.j2), autoescaped, no scripts, nothing fetched
    markdown.py  the same tables in Markdown
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import write_text
from .runs import load_run
from .tables import build

FORMATS = ("html", "md")


def render(run_dir, fmt: str = "html") -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    data = build(load_run(run_dir))
    if fmt == "html":
        from .html import render_html

        return render_html(data)
    from .markdown import render_markdown

    return render_markdown(data)


def default_output(run_dir, fmt: str = "html", root="reports") -> Path:
    """reports/<suite>-<run-id>.<ext>: results/<suite>/<run-id>/ gives both names."""
    run_dir = Path(run_dir).resolve()
    return Path(root) / f"{run_dir.parent.name}-{run_dir.name}.{fmt}"


def write_report(run_dir, out=None, fmt: str = "html") -> Path:
    text = render(run_dir, fmt)
    out = Path(out) if out is not None else default_output(run_dir, fmt)
    write_text(out, text)
    return out
