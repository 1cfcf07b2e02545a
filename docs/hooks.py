"""mkdocs hook: the reference tables (methods, conditions, architectures, datasets, model metrics,
export formats) are generated from kdbench's registries at build time, so the docs cannot drift
from the code. A page asks for one with a line `<!-- reference: methods -->`. Likewise a published
run's page (`<!-- published: results/published/cifar_noise -->`) and the leaderboard over the
published runs (`<!-- leaderboard: results/published -->`) are computed from the committed run
directories."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)

MARKER = re.compile(r"^<!-- reference: (\w+) -->$", re.M)
RUN_MARKER = re.compile(r"^<!-- (published|leaderboard): ([\w./-]+) -->$", re.M)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if hasattr(value, "model_dump"):
        return "(section)"
    return f"`{value!r}`" if value is not None else "none"


def _params(model, skip=("name",)) -> str:
    """A model's fields as `key` (default): description, one per line of a table cell."""
    parts = []
    for key, field in model.model_fields.items():
        if key in skip:
            continue
        desc = f": {field.description}" if field.description else ""
        parts.append(f"`{key}` ({_default(field)}){desc}")
    return "<br>".join(parts) or "none"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def reference(kind: str) -> str:
    """The Markdown table for one registry."""
    if ROOT not in sys.path:  # the package from this checkout, installed or not
        sys.path.insert(0, ROOT)
    from kdbench.registry import summary

    if kind == "methods":
        from kdbench.training.methods import METHODS

        rows = [[f"`{n}`", summary(cls.__doc__), cls.role, _params(cls.Params)] for n, cls in METHODS.items()]
        return _table(["method", "what it minimises", "role", "parameters (default)"], rows)
    if kind == "conditions":
        from kdbench.evaluation.conditions import CONDITIONS

        rows = [
            [f"`{n}`", summary(cls.__doc__), getattr(cls, "group", ""), _params(cls.Params)]
            for n, cls in CONDITIONS.items()
        ]
        return _table(["condition", "what it does", "group", "parameters (default)"], rows)
    if kind == "architectures":
        from kdbench.models import MODELS

        return _table(["architecture", "what it is"], [[f"`{n}`", MODELS.doc(n)] for n in MODELS.names()])
    if kind == "datasets":
        from kdbench.data import DATASETS

        return _table(["dataset", "what it reads"], [[f"`{n}`", DATASETS.doc(n)] for n in DATASETS.names()])
    if kind == "metrics":
        from kdbench.evaluation.model_metrics import MODEL_METRICS

        rows = [
            [f"`{n}`", m.kind, {True: "lower", False: "higher", None: "descriptive"}[m.lower_is_better], m.doc]
            for n, m in MODEL_METRICS.items()
        ]
        return _table(["metric", "kind", "better", "what it measures"], rows)
    if kind == "exports":
        from kdbench.exports import EXPORTERS

        return _table(["format", "what it writes"], [[f"`{n}`", EXPORTERS.doc(n)] for n in EXPORTERS.names()])
    raise ValueError(f"unknown reference '{kind}'")


def from_runs(kind: str, path: str) -> str:
    """A published run's page, or the leaderboard over the runs under `path` (relative to the root)."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    where = Path(ROOT) / path
    if kind == "published":
        from kdbench.reports.published import published_page

        return published_page(where)
    import tempfile

    from kdbench.index.database import index_runs
    from kdbench.index.leaderboard import write_leaderboard

    with tempfile.TemporaryDirectory() as tmp:  # the index is built aside: the checkout stays as it is
        db = Path(tmp) / "runs.sqlite"
        index_runs(db, [where], log=lambda line: None)
        page = write_leaderboard([db], Path(tmp) / "leaderboard.md", "md", log=lambda line: None)
        text = page.read_text(encoding="utf-8")
    return re.sub(r"^# kdbench leaderboard\n", "", text)


def on_page_markdown(markdown: str, **kwargs) -> str:
    markdown = MARKER.sub(lambda m: reference(m.group(1)), markdown)
    return RUN_MARKER.sub(lambda m: from_runs(m.group(1), m.group(2)), markdown)
