"""The run-level figures: the corruption heat map (distilled - baseline per corruption and pair)
and robust against clean accuracy, one point per model and seed."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from kdbench.reports.figure import COLORS, RC, _figure, _text, to_data_uri
from kdbench.reports.tables import ReportData
from kdbench.util.format import level_text, signed_pp
from kdbench.util.levels import level_value
from kdbench.util.names import WORST_CASE


def corruption_differences(data: ReportData) -> pd.DataFrame | None:
    """corruption x "distilled − baseline": the difference of mean accuracies over severities and seeds."""
    c = data.corruption
    if c is None or c.empty:
        return None
    pairs = [p for p in data.pairs if p.distilled in c.columns and p.baseline in c.columns]
    if not pairs:
        return None
    return pd.DataFrame({f"{p.distilled} − {p.baseline}": c[p.distilled] - c[p.baseline] for p in pairs})


@matplotlib.rc_context(RC)
def heatmap(data: ReportData) -> str | None:
    """Per corruption (rows) and compare pair (columns): distilled - baseline, mean over severities
    and seeds, on a diverging scale centred at 0 (orange: the distilled student is better)."""
    diffs = corruption_differences(data)
    if diffs is None:
        return None
    c, values = data.corruption, 100 * diffs.to_numpy(float)
    pairs = list(diffs.columns)
    reach = max(float(np.nanmax(np.abs(values))), 0.1)
    fig = _figure(1.3 * len(pairs) + 2.6, 0.3 * c.shape[0] + 1.5)
    ax = fig.subplots()
    im = ax.imshow(values, cmap="PuOr_r", aspect="auto", vmin=-reach, vmax=reach)
    ax.set_xticks(range(len(pairs)), [_text(p) for p in pairs], rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(c.shape[0]), [_text(n) for n in c.index], fontsize=8)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if not np.isnan(values[i, j]):
                ax.text(
                    j,
                    i,
                    signed_pp(values[i, j] / 100),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(values[i, j]) > 0.6 * reach else "black",
                )
    fig.colorbar(im, ax=ax, label="difference (pp), mean over severities and seeds")
    return to_data_uri(fig)


@matplotlib.rc_context(RC)
def scatter(data: ReportData) -> str | None:
    """Robust against clean accuracy, one point per model and seed: worst-case attack accuracy at
    the largest epsilon, and mean corruption accuracy, where the run has them."""
    ps = data.per_seed
    clean = ps[ps["group"] == "clean"].set_index(["model", "seed"])["accuracy"]
    panels = []
    worst = ps[(ps["group"] == "attack") & (ps["condition"] == WORST_CASE)]
    if len(worst):
        top = max(worst["level"], key=level_value)
        panels.append(
            (
                f"worst-case attack accuracy at ε={level_text('attack', top)} (%)",
                worst[worst["level"] == top].set_index(["model", "seed"])["accuracy"],
            )
        )
    mc = data.mean_corruption
    if mc is not None and len(mc):
        panels.append(("mean corruption accuracy (%)", mc.set_index(["model", "seed"])["accuracy"]))
    if not panels or clean.empty:
        return None
    roles = ps.drop_duplicates("model").set_index("model")["role"]
    fig = _figure(3.6 * len(panels) + 0.8, 3.0)
    for ax, (label, robust) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        paired = pd.concat([clean, robust], axis=1, join="inner", keys=["clean", "robust"])
        for model in dict.fromkeys(robust.index.get_level_values(0)):
            both = paired.loc[[model]]
            role = roles.get(model, "")
            ax.scatter(
                100 * both["clean"],
                100 * both["robust"],
                s=18,
                color=COLORS.get(role, "#333333"),
                marker="s" if role == "teacher" else "o",
                label=_text(f"{model} ({role})"),
            )
        ax.set_xlabel("clean accuracy (%)")
        ax.set_ylabel(label)
        ax.legend(fontsize=7, frameon=False)
    return to_data_uri(fig)
