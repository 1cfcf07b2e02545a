"""The report's tables as rows of display strings, shared by the HTML and the Markdown renderers.

Plain strings only: escaping is the renderer's job (Jinja2 autoescape for HTML, md_escape for
Markdown), so nothing here may contain markup.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kdbench.reports.keys import MEAN_CORRUPTION
from kdbench.reports.pairs import Pair, headline_groups
from kdbench.reports.tables import ReportData, masking_warning
from kdbench.util.format import DASH, interval_pct, interval_pp, level_text, mdd_pp, pct, pvalue, signed_pp

ALPHA = 0.05


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def accuracy_cell(acc, sd, lo, hi, seeds: int) -> str:
    if _nan(acc):
        return DASH
    if seeds > 1:
        return f"{pct(acc)} ± {pct(sd)}" if not _nan(sd) else pct(acc)
    return f"{pct(acc)} {interval_pct(lo, hi)}" if not _nan(lo) else pct(acc)


def _diff_cell(row) -> str:
    d = signed_pp(row["diff"])
    return f"{d} ± {pct(row['diff_sd'])}" if row["seed_pairs"] > 1 and not _nan(row["diff_sd"]) else d


def _seed_list(seeds) -> str:
    return ", ".join(str(s) for s in seeds)


def pair_header(pair: Pair) -> dict:
    if pair.design == "paired":
        seeds = (
            f"{len(pair.seed_pairs)} seed pair{'s' if len(pair.seed_pairs) != 1 else ''}: {_seed_list(pair.seeds[0])}"
        )
        test = "paired by seed" if len(pair.seed_pairs) > 1 else "one seed pair: too few seeds for a method-level test"
    else:
        seeds = f"seeds {_seed_list(pair.seeds[0])} (baseline) and {_seed_list(pair.seeds[1])} (distilled)"
        test = "unpaired (the two models' seeds differ)"
    many = max(len(pair.seeds[0]), len(pair.seeds[1])) > 1
    return {
        "title": f"{pair.distilled} vs {pair.baseline}",
        "role": pair.role,
        "distilled": pair.distilled,
        "baseline": pair.baseline,
        "seeds": seeds,
        "design": test,
        "n_seeds": len(pair.seed_pairs),
        "teachers": ", ".join(pair.teachers),
        "acc_note": f"mean ± sd over {max(len(pair.seeds[0]), len(pair.seeds[1]))} seeds"
        if many
        else "with its Wilson 95% interval",
        "diff_note": "mean ± sd of the per-seed differences"
        if pair.design == "paired" and len(pair.seed_pairs) > 1
        else "",
    }


def _pair_row(row, teachers, warning: str = "") -> dict:
    seeds = max(int(row.get("base_seeds", row["seed_pairs"])), int(row.get("dist_seeds", row["seed_pairs"])))
    p_holm = row.get("p_holm", np.nan)
    sig = not _nan(p_holm) and p_holm < ALPHA
    mdd = row.get("mdd", np.nan)
    return {
        "metric": row["label"],
        "group": row["group"],
        "baseline": accuracy_cell(row["base_acc"], row["base_sd"], row["base_lo"], row["base_hi"], seeds),
        "distilled": accuracy_cell(row["dist_acc"], row["dist_sd"], row["dist_lo"], row["dist_hi"], seeds),
        "diff": _diff_cell(row),
        "ci": interval_pp(row["ci_lo"], row["ci_hi"]),
        "p": pvalue(row["p"]),
        "p_holm": pvalue(p_holm),
        "mdd": mdd_pp(mdd),
        "verdict": row.get("verdict", "") or DASH,
        "teachers": [pct(row.get(f"teacher:{t}", np.nan)) for t in teachers],
        "significant": sig,
        # colour says "significant, this way"; an insignificant +0.1 is not good news
        "sign": ("up" if row["diff"] > 0 else "down") if sig else "flat",
        "warning": warning,
    }


def per_seed_pair_rows(pair: Pair) -> list[dict]:
    """Exact McNemar per seed pair: about these two trained networks, never pooled, never the headline."""
    return [
        {
            "metric": r.label,
            "seeds": f"{r.base_seed}" if r.base_seed == r.dist_seed else f"{r.base_seed} / {r.dist_seed}",
            "baseline": pct(r.base_acc, 2),
            "distilled": pct(r.dist_acc, 2),
            "diff": signed_pp(r.diff, 2),
            "discordant": f"{int(r.only_base)} / {int(r.only_dist)}",
            "p": pvalue(r.p),
        }
        for r in pair.per_seed.itertuples(index=False)
    ]


def headline_rows(data: ReportData, pair: Pair) -> list[dict]:
    """Clean, mean corruption accuracy (and mCE), noise per sigma, attacks per epsilon."""
    out = []
    for group, rows in headline_groups(pair.table):
        for _, r in rows.iterrows():
            # an attack row never shows a robust-looking model without the masking flag beside it
            flag = (
                masking_warning(data.masking, (pair.distilled, pair.baseline), r["level"], r["condition"])
                if group == "attack"
                else ""
            )
            out.append(_pair_row(r, pair.teachers, flag))
        if group == MEAN_CORRUPTION:
            out += mce_rows(data, pair)
    return out


def masking_rows(data: ReportData) -> list[dict]:
    return [
        {
            "model": r.model,
            "seed": int(r.seed),
            "check": r.check,
            "eps": level_text("attack", r.eps, r.norm) + (" (L2)" if r.norm == "L2" else "") or DASH,
            "value": f"{r.value:.3g}",
            "threshold": f"{r.threshold:g}",
        }
        for r in data.masking.itertuples(index=False)
    ]


def corruption_rows(pair: Pair) -> list[dict]:
    t = pair.table
    return [_pair_row(r, pair.teachers) for _, r in t[t["group"] == "corruption"].iterrows()]


def mce_rows(data: ReportData, pair: Pair) -> list[dict]:
    if data.mce is None:
        return []
    m = data.mce

    def value(model, col):
        v = pd.to_numeric(m.loc[m["model"] == model, col], errors="coerce") if col in m else pd.Series(dtype=float)
        return (
            (f"{v.mean():.3g}" + (f" ± {v.std(ddof=1):.2g}" if len(v) > 1 else ""))
            if len(v) and not v.isna().all()
            else DASH
        )

    rows = []
    for col, name in (("mce", "mCE"), ("relative_mce", "relative mCE")):
        if col in m.columns:
            rows.append(
                {
                    "metric": name,
                    "group": "mce",
                    "baseline": value(pair.baseline, col),
                    "distilled": value(pair.distilled, col),
                    "diff": DASH,
                    "ci": DASH,
                    "p": DASH,
                    "p_holm": DASH,
                    "mdd": DASH,
                    "verdict": DASH,
                    "teachers": [value(t, col) for t in pair.teachers],
                    "significant": False,
                    "sign": "flat",
                    "warning": "",
                }
            )
    return rows


def teacher_rows(data: ReportData) -> tuple[list[str], list[dict]]:
    """Teachers' accuracies; single corruptions stay in the heat map, their mean is a row here."""
    t = data.teachers
    names = list(dict.fromkeys(t["model"]))
    rows = []
    for label in dict.fromkeys(t.loc[t["group"] != "corruption", "label"]):
        cells = []
        for name in names:
            r = t[(t["model"] == name) & (t["label"] == label)]
            cells.append(accuracy_cell(*r.iloc[0][["accuracy", "sd", "lo", "hi", "seeds"]]) if len(r) else DASH)
        rows.append({"metric": label, "cells": cells})
        if label == "clean" and len(data.mean_corruption):
            mc = data.mean_corruption.groupby("model")["accuracy"].mean()
            rows.append({"metric": data.mean_corruption_label, "cells": [pct(mc.get(n, np.nan)) for n in names]})
    return names, rows


def agreement_rows(data: ReportData) -> list[dict]:
    rows = []
    for _, r in data.agreement.iterrows():
        rows.append(
            {
                "model": r["model"],
                "teachers": r["teachers"],
                "seeds": int(r["seeds"]),
                "agreement": f"{pct(r['agreement'])} ± {pct(r['sd'])}" if r["seeds"] > 1 else pct(r["agreement"]),
                "per_seed": ", ".join(f"{s}: {pct(v)}" for s, v in r["per_seed"]),
            }
        )
    return rows


def corruption_matrix_rows(data: ReportData) -> tuple[list[str], list[dict]]:
    c = data.corruption
    if c is None or c.empty:
        return [], []
    rows = [{"metric": name, "cells": [pct(v) for v in c.loc[name]]} for name in c.index]
    mc = data.mean_corruption
    if len(mc):
        means = mc.groupby("model")["accuracy"].mean()
        rows.append({"metric": "mean", "cells": [pct(means.get(m, np.nan)) for m in c.columns]})
    return list(c.columns), rows


def per_seed_rows(data: ReportData) -> list[dict]:
    p = data.per_seed
    return [
        {
            "model": r.model,
            "role": r.role,
            "seed": int(r.seed),
            "metric": r.label,
            "correct": f"{int(r.correct)}/{int(r.n)}",
            "accuracy": pct(r.accuracy, 2),
            "wilson": interval_pct(r.lo, r.hi, 2),
        }
        for r in p.itertuples(index=False)
    ]


def model_rows(data: ReportData) -> list[dict]:
    a = data.accuracy.drop_duplicates("model")
    seeds = data.per_seed.groupby("model")["seed"].apply(lambda s: ", ".join(str(x) for x in sorted(set(s))))
    return [
        {"model": r.model, "role": r.role, "method": r.method, "arch": r.arch, "seeds": seeds.get(r.model, "")}
        for r in a.itertuples(index=False)
    ]


def provenance_rows(data: ReportData) -> dict:
    prov = data.provenance
    fmt = lambda v: f"{v:.1f} s" if isinstance(v, float) else str(v)  # noqa: E731
    jobs = prov["jobs"]
    job_rows = []
    if len(jobs):
        for _, j in jobs.iterrows():
            job_rows.append(
                {
                    k: (
                        ""
                        if _nan(j.get(k))
                        else (
                            f"{j.get(k):.1f}" if k == "wall_s" and isinstance(j.get(k), (int, float)) else str(j.get(k))
                        )
                    )
                    for k in ("id", "kind", "model", "seed", "wall_s", "cached")
                }
            )
    return {
        "facts": [(k, fmt(v)) for k, v in prov["versions"] + prov["times"] + prov["other"]],
        "hashes": [(k, str(v)) for k, v in prov["hashes"]],
        "jobs": job_rows,
        "jobs_wall_s": f"{prov['jobs_wall_s']:.1f}",
        "suite_text": prov["suite_text"],
    }
