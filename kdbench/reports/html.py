"""One self-contained HTML file: Jinja2 with autoescape, inline CSS, figures as data URIs, no scripts.

Autoescape is switched on explicitly (not by file extension), so every model name, condition
and manifest value reaches the page as text.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from kdbench.reports import plots, rows, verdicts
from kdbench.reports.calibration import CALIBRATION_NOTE, calibration_rows
from kdbench.reports.tables import MASKING_TEXT, STATISTICS_TEXT, ReportData
from kdbench.version import __version__

TEMPLATES = Path(__file__).with_name("templates")


def environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def context(data: ReportData) -> dict:
    figures = plots.all_figures(data)
    agreement = rows.agreement_rows(data)
    pairs = []
    for pair, figs in zip(data.pairs, figures["pairs"]):
        pairs.append(
            {
                "header": rows.pair_header(pair),
                "rows": rows.headline_rows(data, pair),
                "corruption_rows": rows.corruption_rows(pair),
                "per_seed_rows": rows.per_seed_pair_rows(pair),
                "calibration_rows": calibration_rows(data.run, pair.baseline, pair.distilled),
                "teachers": pair.teachers,
                "agreement": [a for a in agreement if a["model"] == pair.distilled],
                "mce_note": data.mce_note,
                "figures": figs,
            }
        )
    teacher_names, teacher_rows = rows.teacher_rows(data)
    corruption_cols, corruption_matrix = rows.corruption_matrix_rows(data)
    man = data.run.manifest
    multi = any(len(p.seed_pairs) > 1 for p in data.pairs)
    return {
        "version": __version__,
        "title": data.title,
        "run_path": str(data.run.path),
        "finished": man.get("finished", ""),
        "examples_note": data.examples_note,
        "device": " ".join(dict.fromkeys(str(man[k]) for k in ("device", "device_name") if man.get(k))),
        "commit": _short_commit(man.get("git_commit")),
        "models": rows.model_rows(data),
        "glance": glance(data),
        "pairs": pairs,
        "teacher_names": teacher_names,
        "teachers": teacher_rows,
        "agreement": agreement,
        "calibration_note": CALIBRATION_NOTE,
        "corruption_cols": corruption_cols,
        "corruption_matrix": corruption_matrix,
        "mean_corruption_label": data.mean_corruption_label,
        "corruption_note": data.corruption_note,
        "heatmap": figures["heatmap"],
        "scatter": figures["scatter"],
        "per_seed": rows.per_seed_rows(data),
        "holm_family": data.holm_family,
        "holm_detail": data.holm_detail,
        "statistics": STATISTICS_TEXT.format(family=data.holm_family, detail=data.holm_detail),
        "band_note": "Bands: ±1 standard deviation over seeds." if multi else "Bands: Wilson 95% intervals.",
        "provenance": rows.provenance_rows(data),
        "masking": rows.masking_rows(data),
        "masking_text": MASKING_TEXT,
    }


def glance(data: ReportData) -> list[dict]:
    """The verdict block: per kind of pair (distilled, control), one sentence per pair."""
    out, every = [], verdicts.pair_verdicts(data)
    for kind, heading in verdicts.KINDS:
        sentences = [
            {"title": v.title, "findings": [{"text": t, "significant": sig} for t, sig in v.clauses()]}
            for v in every
            if v.kind == kind
        ]
        if sentences:
            out.append({"heading": heading, "sentences": sentences})
    return out


def _short_commit(commit) -> str:
    text = str(commit or "")
    return text[:12] + ("-dirty" if text.endswith("-dirty") else "")


def render_html(data: ReportData) -> str:
    return environment().get_template("report.html.j2").render(**context(data))
