"""The report's figures, as SVG data URIs to inline in <img> tags.

Figures are built on bare matplotlib Figure objects with the Agg canvas (no pyplot state, no
display needed). An SVG inside <img src="data:..."> is rendered as an image: nothing in it can
run or fetch, whatever the model names say. Names are passed through `_text` because matplotlib
reads `$...$` as mathematics and hides legend labels that start with '_'.
"""

from __future__ import annotations

import base64
import io

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kdbench.reports.format import level_text, signed_pp
from kdbench.reports.pairs import Pair
from kdbench.reports.tables import ReportData
from kdbench.util.levels import level_value
from kdbench.util.names import WORST_CASE, corruption_name, norm_of

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
