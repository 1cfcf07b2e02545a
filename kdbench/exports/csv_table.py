from __future__ import annotations

from pathlib import Path

from kdbench.exports import register_exporter
from kdbench.exports.headline import headline_table
from kdbench.util.atomic import write_text


@register_exporter("csv")
def write_csv(data, out: Path) -> list[Path]:
    """The headline table, tidy: one row per pair and metric, fractions in [0, 1], empty where
    a value does not apply (no interval with one seed)."""
    write_text(out, headline_table(data).to_csv(index=False, float_format="%.6g"))
    return [out]
