"""What every figure of the report shares: its colours and style, a bare Agg figure, and its SVG
data URI. Names pass through _text: matplotlib reads $...$ as mathematics and hides legend labels
that start with '_'."""

from __future__ import annotations

import base64
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLORS = {"baseline": "#1f77b4", "distilled": "#d95f02", "control": "#7570b3", "teacher": "#7f7f7f"}


RC = {"svg.fonttype": "path", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}


def _text(s) -> str:
    s = str(s).replace("$", r"\$")
    return "\u200b" + s if s.startswith("_") else s


def to_data_uri(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})  # constrained layout already fits it
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float) -> Figure:
    return Figure(figsize=(w, h), layout="constrained")
