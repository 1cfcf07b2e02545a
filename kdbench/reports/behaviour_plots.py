"""A pair's figures beyond accuracy: agreement with the teacher, calibration (reliability) and
the training curves."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from kdbench.reports.figure import COLORS, RC, _figure, _text, to_data_uri
from kdbench.reports.pairs import Pair
from kdbench.reports.tables import ReportData
from kdbench.util.levels import level_value
from kdbench.util.names import norm_of


@matplotlib.rc_context(RC)
def agreement_plot(data: ReportData, pair: Pair) -> str | None:
    """Top-1 agreement with the teacher against the noise sigma, the corruption severity (mean
    over corruptions) and each attack's epsilon (the teacher on the student's own adversarial
    examples), both twins, clean at 0; None unless the teacher was scored off clean data."""
    from kdbench.reports.calibration import summarised

    mm = data.run.model_metrics
    if mm is None or mm.empty:
        return None
    series = {}
    for model in (pair.baseline, pair.distilled):
        s = summarised(mm, model)
        s = s[s["metric"] == "agreement"]
        series[model] = (
            s.groupby(["group", "condition", "level"], sort=False)["value"].agg(["mean", "std"]).reset_index()
        )
    panels = [
        (g, c)
        for g, c in dict.fromkeys(zip(series[pair.distilled]["group"], series[pair.distilled]["condition"]))
        if g != "clean"
    ]
    if not panels:
        return None
    fig = _figure(3.5 * len(panels) + 0.6, 2.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (group, cond) in zip(axes, panels):
        for model, role in ((pair.baseline, "baseline"), (pair.distilled, pair.role)):
            t = series[model]
            rows = pd.concat(
                [t[t["group"] == "clean"].assign(level="0"), t[(t["group"] == group) & (t["condition"] == cond)]]
            )
            x = rows["level"].map(level_value) if group == "noise" else rows["level"].astype(float)
            if group == "attack" and norm_of(cond) == "Linf":
                x = x * 255
            y, sd = 100 * rows["mean"], 100 * rows["std"].fillna(0)
            color = COLORS.get(role, "#333333")
            ax.plot(x, y, "-", marker="o", ms=3, color=color, label=_text(f"{model} ({role})"))
            ax.fill_between(x, y - sd, y + sd, color=color, alpha=0.18, lw=0)
        ax.set_xlabel(
            f"{_text(cond)} σ"
            if group == "noise"
            else f"{_text(cond)} ε ({'L2' if norm_of(cond) == 'L2' else '×1/255'})"
            if group == "attack"
            else "severity, mean over corruptions (0 = clean)"
        )
        ax.set_ylabel("agreement with the teacher (%)")
        ax.legend(fontsize=7, frameon=False)
    return to_data_uri(fig)


TRAINING_PANELS = (
    ("loss", "training loss (the method's objective)"),
    ("train_accuracy", "training accuracy (%)"),
    ("lr", "learning rate"),
)


@matplotlib.rc_context(RC)
def training_plot(data: ReportData, pair: Pair) -> str | None:
    """Per epoch, both twins: the training objective, training accuracy and learning rate, each seed
    a thin line and the mean over seeds bold; None when neither twin was trained in this run."""
    t = data.run.training
    if t is None or t.empty:
        return None
    t = t[t["model"].isin([pair.baseline, pair.distilled])]
    panels = [(m, label) for m, label in TRAINING_PANELS if (t["metric"] == m).any()]
    if t.empty or not panels:
        return None
    fig = _figure(3.5 * len(panels) + 0.6, 2.8)
    for ax, (metric, label) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for model, role in ((pair.baseline, "baseline"), (pair.distilled, pair.role)):
            rows = t[(t["model"] == model) & (t["metric"] == metric)]
            if rows.empty:
                continue
            color, scale = COLORS.get(role, "#333333"), 100 if metric == "train_accuracy" else 1
            for _, seed in rows.groupby("seed"):
                ax.plot(seed["epoch"], scale * seed["value"], "-", lw=0.6, alpha=0.45, color=color)
            mean = rows.groupby("epoch")["value"].mean()
            ax.plot(mean.index, scale * mean.values, "-", lw=2, color=color, label=_text(f"{model} ({role})"))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=7, frameon=False)
    return to_data_uri(fig)


@matplotlib.rc_context(RC)
def reliability_plot(data: ReportData, pair: Pair) -> str | None:
    """Accuracy against mean confidence in the ECE's 15 bins, clean data, seeds pooled, both twins;
    None without per-example confidences (runs before model_metrics.npz)."""
    from kdbench.evaluation.model_metrics.calibration import reliability_bins
    from kdbench.reports.calibration import per_example_matrix

    run = data.run
    curves = {}
    for model in (pair.baseline, pair.distilled):
        got = per_example_matrix(run, model, "confidence", 0.0, "clean", "clean", "")
        if got is None:
            return None
        seeds, conf = got
        try:
            right = np.stack([run.correct_for(model, seed, "clean") for seed in seeds])
        except KeyError:
            return None
        curves[model] = [t.numpy() for t in reliability_bins(conf.ravel(), right.ravel())]
    fig = _figure(3.6, 3.4)
    ax = fig.subplots()
    ax.plot([0, 100], [0, 100], ":", color="#888888", lw=1, label="calibrated")
    for model, role in ((pair.baseline, "baseline"), (pair.distilled, pair.role)):
        conf, acc, count = curves[model]
        color = COLORS.get(role, "#333333")
        ax.plot(100 * conf, 100 * acc, "-", color=color, lw=1, label=_text(f"{model} ({role})"))
        ax.scatter(100 * conf, 100 * acc, s=8 + 60 * count / max(1, count.max()), color=color, zorder=3)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("mean confidence in the bin (%)")
    ax.set_ylabel("accuracy in the bin (%)")
    ax.legend(fontsize=7, frameon=False)
    return to_data_uri(fig)
