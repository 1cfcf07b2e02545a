"""The leaderboard: every network of the runs index, one row each, in one table per evaluation
specification (runs evaluated differently are never pooled into one column).

A network is a model of a suite with its architecture, method, dataset and training recipe (the
suite's `train` section and the model's own), its seeds pooled: each column is the mean over the
network's seeds, a seed measured in several runs taken from the latest. Columns: clean
accuracy, the worst case per norm and epsilon, AutoAttack per epsilon where it ran, mean
corruption accuracy and mCE, clean ECE, clean agreement with the teacher, and for a distilled
student the difference from its baseline twin (clean and worst case at the largest Linf epsilon)
with its interval and verdict, flagged where a gradient-masking check was.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from kdbench.util.format import level_text, pct
from kdbench.util.lazy import lazy
from kdbench.util.levels import level_value
from kdbench.util.names import attack_condition, is_worst_case, norm_of

pd = lazy("pandas")

KEY = ["network"]


@dataclass
class Column:
    key: str  # the sort key in the page
    label: str
    kind: str = "number"  # number (sorts numerically) or text


@dataclass
class Group:
    """The networks evaluated under one specification."""

    spec: str
    runs: list[dict]  # path, run_id, suite, finished
    columns: list[Column] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # key -> {"text": shown, "value": sort value}; "run": path


def _mean(values) -> float:
    values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else math.nan


def _latest_per_seed(frame, runs):
    """Rows of each (network, seed) from the latest run measuring it."""
    finished = runs.set_index("path")["finished"].fillna("")
    frame = frame.assign(_finished=frame["path"].map(finished))
    last = frame.groupby(KEY + ["seed"])["_finished"].transform("max")
    return frame[frame["_finished"] == last].drop(columns="_finished")


def _cell(value: float, text: str | None = None) -> dict:
    return {"value": None if value is None or math.isnan(value) else float(value), "text": text or pct(value)}


def build(tables: dict) -> list[Group]:
    """Groups from the index's tables (runs, metrics, summary, model_metrics, verdicts, diagnostics)."""
    runs = tables["runs"].copy()
    manifests = dict(zip(runs["path"], (json.loads(m) for m in runs["manifest"])))

    def with_run(t):
        t = t.merge(runs[["path", "eval_spec_hash", "dataset"]], on="path")
        t["network"] = [network_of(manifests[p], m) for p, m in zip(t["path"], t["model"])]
        return t

    metrics = with_run(tables["metrics"])
    summary = with_run(tables["summary"]) if len(tables["summary"]) else None
    mm = with_run(tables["model_metrics"]) if len(tables["model_metrics"]) else None
    verdicts = tables["verdicts"].merge(runs[["path", "finished"]], on="path")
    finished = runs.set_index("path")["finished"].fillna("").to_dict()
    groups = []
    for spec, m in metrics.groupby("eval_spec_hash", sort=False):
        in_group = runs[runs["eval_spec_hash"] == spec].sort_values("finished")
        group = Group(spec, in_group[["path", "run_id", "suite", "finished"]].to_dict("records"))
        m = _latest_per_seed(m, runs)
        attack = m[m["group"] == "attack"]
        cells = {(c, lv) for c, lv in zip(attack["condition"], attack["level"])}
        worst = sorted(
            ((c, lv) for c, lv in cells if is_worst_case(c)), key=lambda k: (norm_of(k[0]), level_value(k[1]))
        )
        auto = sorted(
            ((c, lv) for c, lv in cells if c in (attack_condition("autoattack", n) for n in ("Linf", "L2"))),
            key=lambda k: (norm_of(k[0]), level_value(k[1])),
        )
        group.columns = [
            Column("model", "network", "text"),
            Column("method", "method", "text"),
            Column("arch", "architecture", "text"),
            Column("dataset", "dataset", "text"),
            Column("seeds", "seeds"),
            Column("clean", "clean %"),
            *[Column(f"{c}@{lv}", f"worst case {_eps(c, lv)} %") for c, lv in worst],
            *[Column(f"{c}@{lv}", f"AutoAttack {_eps(c, lv)} %") for c, lv in auto],
            Column("corruption", "corruption acc. %"),
            Column("mce", "mCE"),
            Column("ece", "ECE %"),
            Column("agreement", "agreement %"),
            Column("delta_clean", "Δ clean vs twin (pp)"),
            Column("delta_robust", "Δ worst case vs twin (pp)"),
        ]
        for network, net in m.groupby("network", sort=False):
            first = net.iloc[0]
            model = first["model"]
            latest = max(net["path"].unique(), key=lambda p: finished.get(p, ""))  # the run the row links to
            row = {
                "run": latest,
                "model": {"value": None, "text": str(model)},
                "method": {"value": None, "text": str(first["method"])},
                "arch": {"value": None, "text": str(first["arch"])},
                "dataset": {"value": None, "text": str(first["dataset"] or "")},
                "seeds": {"value": float(net["seed"].nunique()), "text": str(net["seed"].nunique())},
                "clean": _cell(_mean(net.loc[net["condition"] == "clean", "accuracy"])),
            }
            for c, lv in [*worst, *auto]:
                hit = net[(net["condition"] == c) & (net["level"] == lv)]
                row[f"{c}@{lv}"] = _cell(_mean(hit["accuracy"]))
            row["corruption"] = _cell(_summary(summary, network, "mean_corruption_accuracy"))
            mce = _summary(summary, network, "mce")
            row["mce"] = _cell(mce, "—" if math.isnan(mce) else f"{mce:.1f}")
            row["ece"] = _cell(_model_metric(mm, network, "ece"))
            row["agreement"] = _cell(_model_metric(mm, network, "agreement"))
            row.update(_deltas(verdicts, net, model))
            group.rows.append(row)
        groups.append(group)
    return groups


def _eps(condition: str, level: str) -> str:
    norm = norm_of(condition)
    return f"ε={level_text('attack', level, norm)}" + (" (L2)" if norm == "L2" else "")


def network_of(manifest: dict, model: str) -> str:
    """A network's identity across runs: suite, model, method, architecture, dataset and recipe."""
    from kdbench.util.hashing import content_hash

    suite = manifest.get("suite") if isinstance(manifest.get("suite"), dict) else {}
    spec = (suite.get("students") or {}).get(model) or (suite.get("teachers") or {}).get(model) or {}
    what = [suite.get("name"), model, spec.get("method"), spec.get("arch"), suite.get("dataset"), suite.get("train")]
    return content_hash([*what, spec.get("train"), spec.get("checkpoint"), spec.get("checkpoints")])


def _summary(summary, network, statistic) -> float:
    if summary is None:
        return math.nan
    hit = summary[
        (summary["network"] == network) & (summary["statistic"] == statistic) & (summary["corruption"] == "all")
    ]
    return _mean(hit.drop_duplicates(["seed"], keep="last")["value"])


def _model_metric(mm, network, metric) -> float:
    if mm is None:
        return math.nan
    hit = mm[
        (mm["network"] == network) & (mm["metric"] == metric) & (mm["condition"] == "clean") & mm["temperature"].isna()
    ]
    return _mean(hit.drop_duplicates(["seed"], keep="last")["value"])


def _deltas(verdicts, net, model) -> dict:
    """Δ clean and Δ worst case at the largest Linf epsilon against the twin, from the latest run's
    verdicts: 'diff [lo, hi] verdict', flagged with the masking checks behind it."""
    mine = verdicts[(verdicts["distilled"] == model) & verdicts["path"].isin(set(net["path"]))]
    out = {"delta_clean": _cell(math.nan), "delta_robust": _cell(math.nan)}
    if mine.empty:
        return out
    mine = mine[mine["path"] == mine.sort_values("finished")["path"].iloc[-1]]
    clean = mine[mine["question"] == "clean accuracy"]
    robust = mine[mine["question"].str.startswith("worst-case attack ε=")]
    for key, rows in (("delta_clean", clean), ("delta_robust", robust.iloc[-1:] if len(robust) else robust)):
        if rows.empty:
            continue
        r = rows.iloc[0]
        # one seed a side has no interval (the report's "—"): the verdict says why
        ci = "" if math.isnan(r["ci_lo"]) else f" [{100 * r['ci_lo']:+.1f}, {100 * r['ci_hi']:+.1f}]"
        text = f"{100 * r['diff']:+.1f}{ci} {r['verdict']}"
        if key == "delta_robust":
            text = f"{r['question'].removeprefix('worst-case attack ')}: {text}"
        masked = bool(r["masking"])
        out[key] = {
            "value": float(r["diff"]),
            "text": text + (" ⚠ masking suspected" if masked else ""),
            "flag": masked,
        }
    return out


TEMPLATES = Path(__file__).with_name("templates")


def script() -> tuple[str, str]:
    """The page's one script and its CSP hash ('sha256-...'): only that exact text may run."""
    text = (TEMPLATES / "leaderboard.js").read_text(encoding="utf-8")
    return text, "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def render_html(groups: list[Group], indexes: list[str], links: dict[str, str]) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from kdbench.version import __version__

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined)
    for g in groups:
        for r in g.rows:
            r["report"] = links.get(r["run"], "")
    text, digest = script()
    return env.get_template("leaderboard.html.j2").render(
        groups=groups,
        indexes=indexes,
        n_runs=sum(len(g.runs) for g in groups),
        version=__version__,
        script=text,
        script_hash=digest,
    )


def render_md(groups: list[Group]) -> str:
    from kdbench.util.markdown import md_escape

    out = ["# kdbench leaderboard", ""]
    for g in groups:
        out += [f"## Evaluation specification {g.spec}", ""]
        out += ["Comparable runs: " + md_escape("; ".join(f"{r['suite']} / {r['run_id']}" for r in g.runs)), ""]
        out.append("| " + " | ".join(md_escape(c.label) for c in g.columns) + " |")
        out.append("| " + " | ".join("---" if c.kind == "text" else "---:" for c in g.columns) + " |")
        for r in g.rows:
            out.append("| " + " | ".join(md_escape(r[c.key]["text"]) for c in g.columns) + " |")
        out.append("")
    return "\n".join(out)


def write_leaderboard(dirs, output: Path, fmt: str = "html", log=print) -> Path:
    """Bring each folder's index up to date (`kdbench index`), then write one page over all of
    them; for HTML, each network's run gets its report beside the page (`<page>_reports/`)."""
    from kdbench.index.database import default_db, index_runs, read_table
    from kdbench.util.atomic import write_text

    dbs = []
    for d in dirs:
        db = Path(d) if Path(d).is_file() else default_db([d])
        if not Path(d).is_file():
            index_runs(db, [d], log=log)
        dbs.append(db)
    names = ("runs", "metrics", "summary", "model_metrics", "verdicts")
    tables = {t: pd.concat([read_table(db, t) for db in dbs], ignore_index=True) for t in names}
    tables["runs"] = tables["runs"].drop_duplicates("path", keep="last")
    for t in names[1:]:
        tables[t] = tables[t].drop_duplicates(keep="last")
    groups = build(tables)
    output = Path(output)
    if fmt == "md":
        write_text(output, render_md(groups) + "\n")
        return output
    links = {}
    folder = output.with_name(output.stem + "_reports")
    from kdbench.reports import write_report

    for path in sorted({r["run"] for g in groups for r in g.rows}):
        target = folder / f"{Path(path).parent.name}-{Path(path).name}.html"
        if not target.is_file() or target.stat().st_mtime < (Path(path) / "manifest.json").stat().st_mtime:
            write_report(path, target, "html")
        links[path] = f"{folder.name}/{target.name}"
    write_text(output, render_html(groups, [str(db) for db in dbs], links))
    return output
