"""Everything the report shows, machine-readable (`kdbench export --format json`).

Top-level keys (schema "kdbench-report", version 1; docs/results.md lists every field):
    title, provenance      run identity: versions, times, hashes, the suite as run, the jobs
    verdicts               the "at a glance" sentences, with each finding's numbers
    pairs                  per compare pair: design, seeds, teachers, every tested metric (headline
                           and corruption cells) with its test, and the per-seed-pair McNemar tests
    models, per_seed       accuracy per model and metric over seeds; per metrics.csv row with its
                           Wilson interval
    teachers, agreement, corruption, mean_corruption, mce, masking, model_metrics, holm
Numbers are fractions in [0, 1] (accuracies, differences) or p-values; missing values are null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from kdbench.exports import register_exporter
from kdbench.reports.verdicts import pair_verdicts
from kdbench.util.atomic import write_text

SCHEMA = "kdbench-report"
VERSION = 1


def records(frame) -> list[dict]:
    """A DataFrame as JSON records: NaN as null, numpy scalars as plain numbers, objects dropped."""
    if frame is None:
        return []
    keep = [
        c
        for c in frame.columns
        if frame[c].dtype != object or frame[c].map(lambda v: v is None or isinstance(v, (str, int, float, bool))).all()
    ]
    return json.loads(frame[keep].to_json(orient="records", double_precision=15))


def number(x):
    """A finite float, or None (JSON has no NaN)."""
    return float(x) if x is not None and math.isfinite(float(x)) else None


def report_dict(data) -> dict:
    prov = data.provenance
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "title": data.title,
        "provenance": {
            "versions": dict(prov.get("versions", [])),
            "times": dict(prov.get("times", [])),
            "hashes": dict(prov.get("hashes", [])),
            "other": dict(prov.get("other", [])),
            "suite": data.run.manifest.get("suite"),
            "jobs": records(prov.get("jobs")),
            "jobs_wall_s": number(prov.get("jobs_wall_s")),
        },
        "verdicts": [
            {
                "distilled": v.distilled,
                "baseline": v.baseline,
                "kind": v.kind,
                "arch": v.arch,
                "seeds": v.seeds,
                "sentence": v.sentence(),
                "findings": [
                    {
                        "question": f.question,
                        "verdict": f.verdict,
                        "diff": number(f.diff),
                        "ci_lo": number(f.lo),
                        "ci_hi": number(f.hi),
                        "mdd": number(f.mdd),
                        "masking": f.masking,
                    }
                    for f in v.findings
                ],
            }
            for v in pair_verdicts(data)
        ],
        "pairs": [
            {
                "distilled": p.distilled,
                "baseline": p.baseline,
                "role": p.role,
                "method": p.method,
                "design": p.design,
                "baseline_seeds": p.seeds[0],
                "distilled_seeds": p.seeds[1],
                "seed_pairs": [list(s) for s in p.seed_pairs],
                "teachers": p.teachers,
                "metrics": records(p.table.drop(columns=["test"], errors="ignore")),
                "per_seed": records(p.per_seed),
            }
            for p in data.pairs
        ],
        "models": records(data.accuracy),
        "per_seed": records(data.per_seed),
        "teachers": records(data.teachers),
        "agreement": records(data.agreement),
        "corruption": records(data.corruption),
        "mean_corruption": {"label": data.mean_corruption_label, "rows": records(data.mean_corruption)},
        "mce": {"note": data.mce_note, "rows": records(data.mce)},
        "masking": records(data.masking),
        "model_metrics": records(data.run.model_metrics),
        "training": records(data.run.training),
        "holm": {"headline": data.holm_family, "detail": data.holm_detail},
    }


@register_exporter("json")
def write_json(data, out: Path) -> list[Path]:
    """Everything the report shows, machine-readable (schema kdbench-report v1; no NaN)."""
    # allow_nan=False: a NaN that slipped past `records` fails here instead of writing invalid JSON
    write_text(out, json.dumps(report_dict(data), indent=1, allow_nan=False, default=str) + "\n")
    return [out]
