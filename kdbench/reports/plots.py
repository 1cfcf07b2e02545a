"""The report's figures, as SVG data URIs to inline in <img> tags.

Figures are built on bare matplotlib Figure objects with the Agg canvas (no pyplot state, no
display needed). An SVG inside <img src="data:..."> is rendered as an image: nothing in it can
run or fetch, whatever the model names say. Names are passed through `_text` because matplotlib
reads `$...$` as mathematics and hides legend labels that start with '_'.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from kdbench.reports.behaviour_plots import agreement_plot, reliability_plot, training_plot
from kdbench.reports.figure import COLORS, RC, _figure, _text, to_data_uri
from kdbench.reports.pairs import Pair
from kdbench.reports.run_plots import heatmap, scatter
from kdbench.reports.tables import ReportData
from kdbench.util.format import signed_pp
from kdbench.util.levels import level_value
from kdbench.util.names import corruption_name, norm_of


def _series(data: ReportData, model: str, group: str, condition: str, with_clean: bool = True) -> pd.DataFrame:
    """x (level as a number), accuracy, band low/high for one model and condition; clean as x = 0."""
    acc = data.accuracy
    rows = acc[(acc["model"] == model) & (acc["group"] == group) & (acc["condition"] == condition)].copy()
    if with_clean:
        clean = acc[(acc["model"] == model) & (acc["group"] == "clean")].copy()
        if len(clean):
            clean = clean.iloc[:1].assign(level="0")
            rows = pd.concat([clean, rows])
    if rows.empty:
        return rows
    rows["x"] = rows["level"].map(level_value)
    single = rows["seeds"] == 1
    rows["band_lo"] = np.where(single, rows["lo"], rows["accuracy"] - rows["sd"].fillna(0))
    rows["band_hi"] = np.where(single, rows["hi"], rows["accuracy"] + rows["sd"].fillna(0))
    return rows.sort_values("x")


def _draw(ax, s: pd.DataFrame, role: str, label: str, scale: float = 1.0) -> None:
    """A model's accuracy against the level, with its band. The teacher is a dashed reference that
    does not set the scale (a teacher at 86% would flatten a 2 pp gap between students at 48%):
    its clean accuracy is in its legend label."""
    if s.empty:
        return
    color = COLORS.get(role, "#333333")
    x, y = s["x"] * scale, 100 * s["accuracy"]
    if role == "teacher":
        kept = ax.get_ylim()  # the students' scale, which the teacher's points must not widen
        ax.plot(x, y, "--", marker="o", ms=3, color=color, label=_text(f"{label}, clean {y.iloc[0]:.1f}%"))
        ax.set_ylim(kept)
        return
    ax.plot(x, y, "-", marker="o", ms=3, color=color, label=_text(label))
    ax.fill_between(x, 100 * s["band_lo"], 100 * s["band_hi"], color=color, alpha=0.18, lw=0)


def _pair_models(pair: Pair):
    """Students first, so that they set the axes; the teacher after them."""
    yield pair.baseline, "baseline"
    yield pair.distilled, pair.role
    for t in pair.teachers:
        yield t, "teacher"


@matplotlib.rc_context(RC)
def noise_plot(data: ReportData, pair: Pair) -> str | None:
    return _level_plot(data, pair, "noise", lambda cond: f"{_text(cond)} σ (pixels in [0, 1])", scale=1, titled=False)


@matplotlib.rc_context(RC)
def attack_plot(data: ReportData, pair: Pair) -> str | None:
    l2 = lambda cond: norm_of(cond) == "L2"  # noqa: E731
    return _level_plot(
        data,
        pair,
        "attack",
        lambda cond: "ε (L2, pixels in [0, 1])" if l2(cond) else "ε (×1/255)",
        scale=lambda cond: 1 if l2(cond) else 255,
        titled=True,
    )


def _level_plot(data: ReportData, pair: Pair, group: str, xlabel, scale, titled: bool) -> str | None:
    """One panel per condition of `group`: accuracy against its level (times `scale`, a number or
    a function of the condition), the pair's models on the same axes."""
    conds = list(dict.fromkeys(data.keys.loc[data.keys["group"] == group, "condition"]))
    if not conds:
        return None
    fig = _figure(3.5 * len(conds) + 0.6, 2.8)
    axes = fig.subplots(1, len(conds), squeeze=False)[0]
    for ax, cond in zip(axes, conds):
        for model, role in _pair_models(pair):
            _draw(
                ax,
                _series(data, model, group, cond),
                role,
                f"{model} ({role})",
                scale=scale(cond) if callable(scale) else scale,
            )
        if titled:
            ax.set_title(_text(cond), fontsize=9)
        ax.set_xlabel(xlabel(cond))
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7, frameon=False)
    return to_data_uri(fig)


@matplotlib.rc_context(RC)
def corruption_plot(data: ReportData, pair: Pair) -> str | None:
    conds = list(dict.fromkeys(data.keys.loc[data.keys["group"] == "corruption", "condition"]))
    if not conds:
        return None
    cols = min(5, len(conds))
    nrows = -(-len(conds) // cols)
    fig = _figure(2.3 * cols, 1.9 * nrows + 0.4)
    axes = fig.subplots(nrows, cols, squeeze=False, sharex=True, sharey=True).ravel()
    for ax, cond in zip(axes, conds):
        for model, role in _pair_models(pair):
            _draw(ax, _series(data, model, "corruption", cond), role, f"{model} ({role})")
        ax.set_title(_text(corruption_name(cond)), fontsize=8)
        ax.set_xticks(range(0, 6))
    for ax in axes[len(conds) :]:
        ax.set_visible(False)
    fig.supxlabel("severity (0 = clean)", fontsize=8)
    fig.supylabel("accuracy (%)", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=3, fontsize=7, frameon=False)
    return to_data_uri(fig)


@matplotlib.rc_context(RC)
def difference_plot(data: ReportData, pair: Pair) -> str | None:
    """Differences (distilled - baseline) with their method-level intervals; corruptions only as their mean."""
    t = pair.table
    t = t[(t["group"] != "corruption")]
    if t.empty:
        return None
    labels = [_text(lbl) for lbl in t["label"]]
    y = np.arange(len(t))[::-1]
    diff = 100 * t["diff"].to_numpy(float)
    lo = 100 * t["ci_lo"].to_numpy(float)
    hi = 100 * t["ci_hi"].to_numpy(float)
    fig = _figure(6.4, 0.32 * len(t) + 1.0)
    ax = fig.subplots()
    colors = [COLORS["distilled"] if d >= 0 else COLORS["baseline"] for d in diff]
    ax.barh(y, diff, color=colors, alpha=0.75, height=0.6)
    ax.errorbar(diff, y, xerr=[diff - lo, hi - diff], fmt="none", ecolor="black", elinewidth=1, capsize=2)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, labels, fontsize=8)
    sig = t["p_holm"].to_numpy(float) < 0.05 if "p_holm" in t else np.zeros(len(t), bool)
    for yi, d, h, s in zip(y, diff, hi, sig):
        ax.annotate(
            signed_pp(d / 100) + (" *" if s else ""),
            (max(h, d, 0), yi),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
    ax.set_title(f"{_text(pair.distilled)} − {_text(pair.baseline)}", fontsize=9)
    ax.set_xlabel("difference (pp), 95% interval; * Holm p < 0.05")
    ax.margins(x=0.15)
    return to_data_uri(fig)


def all_figures(data: ReportData) -> dict:
    """{'pairs': [{'noise', 'attack', 'corruption', 'difference', 'agreement', 'reliability', 'training'}
    per pair], 'heatmap': uri|None, 'scatter': uri|None}."""
    return {
        "pairs": [
            {
                "noise": noise_plot(data, p),
                "attack": attack_plot(data, p),
                "corruption": corruption_plot(data, p),
                "difference": difference_plot(data, p),
                "agreement": agreement_plot(data, p),
                "reliability": reliability_plot(data, p),
                "training": training_plot(data, p),
            }
            for p in data.pairs
        ],
        "heatmap": heatmap(data),
        "scatter": scatter(data),
    }
