"""Everything a report shows, built once from a run directory: `build(run) -> ReportData`. The
per-pair statistics are in pairs.py; the metric order and accuracy tables in keys.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kdbench.reports.keys import (
    MetricIndex,
    accuracy_table,
    corruption_matrix,
    corruption_set,
    metric_keys,
    per_seed_table,
)
from kdbench.reports.pairs import Pair, apply_holm, compare_list, pair_table
from kdbench.results.checks import is_per_example
from kdbench.results.contract import DIAGNOSTIC_COLUMNS, Run
from kdbench.util.names import corruption_name, norm_of


@dataclass
class ReportData:
    run: Run
    title: str
    keys: pd.DataFrame  # ordered metric keys: group, condition, level, label
    accuracy: pd.DataFrame  # per model and metric, over seeds
    per_seed: pd.DataFrame  # per metrics.csv row, with its Wilson interval
    pairs: list[Pair]
    teachers: pd.DataFrame
    agreement: pd.DataFrame
    corruption: pd.DataFrame  # model x corruption, mean accuracy over severities and seeds
    mean_corruption: pd.DataFrame  # model, seed, accuracy
    mce: pd.DataFrame | None
    mce_note: str
    mean_corruption_label: str
    corruption_note: str  # which parameters generated the corruptions, when they were generated
    examples_note: str = ""  # how many test examples each condition was scored on
    provenance: dict = field(default_factory=dict)
    holm_family: int = 0  # tests in the headline family
    holm_detail: int = 0  # tests in the corruption-cell family
    masking: pd.DataFrame = field(default_factory=pd.DataFrame)  # flagged gradient-masking checks


def teacher_table(accuracy: pd.DataFrame) -> pd.DataFrame:
    return accuracy[accuracy["role"] == "teacher"].reset_index(drop=True)


def agreement_table(run: Run) -> pd.DataFrame:
    a = run.agreement
    if a.empty:
        return pd.DataFrame(columns=["model", "teachers", "seeds", "agreement", "sd", "per_seed"])
    out = []
    for model, g in a.groupby("model", sort=False):
        g = g.sort_values("seed")
        vals = g["agreement"].astype(float)
        out.append(
            dict(
                model=model,
                teachers=str(g["teachers"].iloc[0]),
                seeds=len(g),
                agreement=vals.mean(),
                sd=vals.std(ddof=1) if len(g) > 1 else np.nan,
                per_seed=list(zip(g["seed"].astype(int), vals)),
            )
        )
    return pd.DataFrame(out)


def corruption_table(accuracy: pd.DataFrame, per_seed: pd.DataFrame) -> pd.DataFrame:
    """Model x corruption: accuracy averaged over severities and seeds (the heat map's numbers)."""
    c = per_seed[per_seed["group"] == "corruption"]
    if c.empty:
        return pd.DataFrame()
    models = list(dict.fromkeys(accuracy["model"]))
    names = list(dict.fromkeys(c["condition"]))
    # mean over severities per seed, then over seeds: every seed weighs the same
    t = (
        c.groupby(["model", "condition", "seed"], sort=False)["accuracy"]
        .mean()
        .groupby(level=[0, 1], sort=False)
        .mean()
    )
    t = t.unstack("model").reindex(index=names, columns=[m for m in models if m in set(c["model"])])
    return t.rename(index=corruption_name)  # rows name corruptions: "fog", not "c:fog"


def mean_corruption_table(run: Run, idx: MetricIndex, keys: pd.DataFrame) -> pd.DataFrame:
    names, _ = corruption_set(keys)
    rows = []
    if names:
        for model, seeds in idx.seeds.items():
            for s in seeds:
                mat = corruption_matrix(idx, keys, names, model, [s])
                if mat is not None:
                    rows.append(dict(model=model, seed=s, accuracy=float(mat.mean())))
    return pd.DataFrame(rows, columns=["model", "seed", "accuracy"])


def mce_table(run: Run) -> tuple[pd.DataFrame | None, str]:
    """mCE and relative mCE (percent, 100 = the reference model the suite names), or a note why not."""
    if not (run.metrics["group"] == "corruption").any():
        return None, ""
    from kdbench.evaluation.conditions.corruptions.metrics import mce_table as corruption_mce

    suite = run.manifest.get("suite") if isinstance(run.manifest.get("suite"), dict) else {}
    corr = (suite.get("evaluate") or {}).get("corruptions") or {}
    reference = corr.get("reference_model") if isinstance(corr, dict) else None
    if not reference:
        return None, "mCE not shown: the suite names no evaluate.corruptions.reference_model"
    return corruption_mce(run.metrics, reference=reference), f"mCE relative to {reference} (100 = the reference)"


# ------------------------------------------------------------------------------------ provenance
VERSION_KEYS = (
    "kdbench_version",
    "python",
    "torch",
    "torchvision",
    "torchattacks",
    "git_commit",
    "device",
    "device_name",
    "cpu",
)
TIME_KEYS = ("started", "finished", "wall_s")
HASH_KEYS = ("suite_hash", "eval_spec_hash", "example_ids_sha256")


def provenance(run: Run) -> dict:
    man = run.manifest
    scalar = lambda v: isinstance(v, (str, int, float, bool)) or v is None  # noqa: E731
    shown = set(VERSION_KEYS + TIME_KEYS + HASH_KEYS + ("suite", "suite_name", "jobs", "compare"))
    other = [(k, man[k]) for k in sorted(man) if k not in shown and scalar(man[k])]
    jobs = pd.DataFrame([j for j in man.get("jobs") or [] if isinstance(j, dict)])
    suite = man.get("suite")
    try:
        import yaml

        suite_text = yaml.safe_dump(suite, sort_keys=False, allow_unicode=True) if suite is not None else ""
    except Exception:  # noqa: BLE001 - YAML is a nicety; JSON always works
        suite_text = json.dumps(suite, indent=2, default=str) if suite is not None else ""
    return {
        "versions": [(k, man[k]) for k in VERSION_KEYS if k in man],
        "times": [(k, man[k]) for k in TIME_KEYS if k in man],
        "hashes": [(k, man[k]) for k in HASH_KEYS if k in man],
        "other": other,
        "jobs": jobs,
        "jobs_wall_s": float(pd.to_numeric(jobs.get("wall_s", pd.Series(dtype=float)), errors="coerce").sum())
        if len(jobs)
        else 0.0,
        "suite_text": suite_text,
    }


# ------------------------------------------------------------------------------------------ build
def build(run: Run) -> ReportData:
    keys = metric_keys(run.metrics)
    per_seed = per_seed_table(run, keys)
    accuracy = accuracy_table(per_seed)
    idx = MetricIndex(run)
    # distilled students first, controls (no teacher) after: the order of every section
    pairs = sorted(
        (pair_table(run, idx, keys, d, b) for d, b in compare_list(run)), key=lambda p: p.role != "distilled"
    )
    families = apply_holm(pairs)
    _, mc_label = corruption_set(keys)
    mce, mce_note = mce_table(run)
    real = run.path.resolve()  # results/<suite>/latest is a link: name the run it points to
    suite = run.manifest.get("suite") if isinstance(run.manifest.get("suite"), dict) else {}
    suite_name = run.manifest.get("suite_name") or suite.get("name") or real.parent.name
    run_id = run.manifest.get("run_id") or real.name
    return ReportData(
        run=run,
        title=f"kdbench report: {suite_name} / {run_id}",
        keys=keys,
        accuracy=accuracy,
        per_seed=per_seed,
        pairs=pairs,
        teachers=teacher_table(accuracy),
        agreement=agreement_table(run),
        corruption=corruption_table(accuracy, per_seed),
        mean_corruption=mean_corruption_table(run, idx, keys),
        mce=mce,
        mce_note=mce_note,
        mean_corruption_label=mc_label,
        corruption_note=(
            f"Corruptions generated with the parameters of {run.manifest['corruption_parameters']}."
            if run.manifest.get("corruption_parameters")
            else ""
        ),
        examples_note=examples_note(run),
        provenance=provenance(run),
        holm_family=families["headline"],
        holm_detail=families["detail"],
        masking=masking_table(run),
    )


def examples_note(run: Run) -> str:
    """'Scored on N test examples', and the conditions scored on the first n of them (their own n)."""
    n_all = len(run.example_index)
    m = run.metrics[run.metrics["group"].map(is_per_example)]
    fewer = m[m["n"] < n_all].drop_duplicates(["group", "condition"])
    if fewer.empty:
        return f"Scored on {n_all:,} test examples."
    parts: dict[int, list[str]] = {}
    for group, cond, n in fewer[["group", "condition", "n"]].itertuples(index=False):
        name = "corruptions" if group == "corruption" else cond
        if name not in parts.setdefault(int(n), []):
            parts[int(n)].append(name)
    subsets = "; ".join(f"{', '.join(names)} on the first {n:,}" for n, names in sorted(parts.items()))
    return f"Scored on {n_all:,} test examples; {subsets} (class-stratified subsets)."


def masking_table(run: Run) -> pd.DataFrame:
    """The flagged rows of diagnostics.csv (empty when nothing was flagged or nothing attacked)."""
    d = run.diagnostics
    if d is None or d.empty:
        return pd.DataFrame(columns=DIAGNOSTIC_COLUMNS)
    return d[d["flagged"]].reset_index(drop=True)


def masking_warning(masking: pd.DataFrame, models, eps: str | None = None, condition: str = "") -> str:
    """'model: check, check' for the models whose robust accuracy a flagged check puts in doubt
    (checks at `eps` in the norm of the attack row `condition`, and those that hold for every
    epsilon)."""
    parts = []
    for model in models:
        m = masking[masking["model"] == model]
        if eps is not None:
            norm = m["norm"] if "norm" in m.columns else "Linf"
            m = m[((m["eps"] == eps) & (norm == norm_of(condition))) | (m["eps"] == "")]
        checks = list(dict.fromkeys(m["check"]))
        if checks:
            parts.append(f"{model}: {', '.join(checks)}")
    return "gradient masking suspected (" + "; ".join(parts) + ")" if parts else ""


STATISTICS_TEXT = (
    "Each difference is distilled − baseline in percentage points, a claim about the method (this "
    "architecture and recipe), so its 95% interval and p-value count both sources of chance: retraining "
    "(the spread between seeds) and the draw of test examples (examples on which one method is "
    "systematically better). They come from the seeds × examples table of per-example results, a "
    "crossed random-effects design whose two variance parts are combined by Banerjee's (1960) rule; "
    "twins trained with the same seeds are compared seed by seed (paired), otherwise the seed spread is "
    "pooled over the two models (unpaired, Student's equal-variance assumption). The test needs two or "
    "more seeds; MDD is the smallest true difference it detects with 80% power at the 5% level, and a "
    'row reads "too few seeds to tell" when the MDD exceeds the observed difference (or 1 pp, for '
    "smaller ones). p Holm is corrected within two families: the {family} headline differences, and "
    "the {detail} corruption-by-severity cells; the MDD is taken at the family's Bonferroni level "
    "(5% / family size), which Holm never needs to go below. The exact McNemar tests per seed pair "
    "(detail) are about those two trained networks on this test set only. scripts/calibrate_stats.py "
    "checks the error rates by simulation; docs/statistics.md."
)

MASKING_TEXT = (
    "These checks (Carlini et al. 2019; Athalye et al. 2018) say an attack may have been fooled by the "
    "model's gradients rather than stopped by its robustness, so the model's robust accuracy is an upper "
    "bound at best; the worst case over attacks is the number to read, and a flagged model must not be "
    "called more robust on cross-entropy attacks alone. Values and thresholds are "
    "fractions (0.03 = 3 points) except the logit margin. docs/attacks.md, 'Gradient-masking checks'."
)
