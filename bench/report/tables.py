"""Tidy tables from one run: what the HTML, Markdown and plots show, computed once.

Statistics per compare pair (distilled - baseline, on the same test examples):
- each accuracy: Wilson 95% interval (one seed) or mean and sample standard deviation over seeds;
- each difference: exact McNemar test (two-sided) on the discordant examples, pooled over the
  seed pairs; a paired percentile bootstrap interval (examples resampled, seeds averaged per
  example, seeded); the per-seed differences' spread; and Holm's correction over every
  difference in the report. The tests and intervals are conditional on the trained models: they
  say how sure we are given these networks and this test set; the seed spread is the
  training-randomness part, which only more seeds can narrow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import stats
from ..results import DIAGNOSTIC_COLUMNS, Run
from .format import level_value, metric_label
from .runs import GROUP_ORDER, is_per_example

# Hendrycks & Dietterich's benchmark corruptions: the 15 that "mean corruption accuracy" averages.
BENCHMARK_CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip
KEY = ["group", "condition", "level"]
MEAN_CORRUPTION = "mean_corruption"
N_BOOT = 10000


@dataclass
class Pair:
    distilled: str
    baseline: str
    seed_pairs: list[tuple[int, int]]  # (baseline seed, distilled seed)
    teachers: list[str]
    table: pd.DataFrame  # one row per metric plus the derived mean-corruption row


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
    provenance: dict = field(default_factory=dict)
    holm_family: int = 0
    masking: pd.DataFrame = field(default_factory=pd.DataFrame)  # flagged gradient-masking checks


# ------------------------------------------------------------------------------------------ keys
def metric_keys(metrics: pd.DataFrame) -> pd.DataFrame:
    """Metric keys in reading order: clean, noise, attacks, corruptions; conditions as first met; levels ascending."""
    keys = metrics[KEY].drop_duplicates().copy()
    first = {c: i for i, c in enumerate(dict.fromkeys(metrics["condition"]))}
    first["worst_case"] = -1  # the robust accuracy the report headlines leads its group
    keys["_g"] = [GROUP_ORDER.index(g) if g in GROUP_ORDER else len(GROUP_ORDER) for g in keys["group"]]
    keys["_c"] = keys["condition"].map(first)
    keys["_l"] = keys["level"].map(level_value)
    keys = keys.sort_values(["_g", "group", "_c", "_l"]).drop(columns=["_g", "_c", "_l"]).reset_index(drop=True)
    keys["label"] = [metric_label(g, c, lv) for g, c, lv in keys[KEY].itertuples(index=False)]
    return keys


class _Index:
    """(model, seed, group, condition, level) -> metrics row, and per-model seed lists."""

    def __init__(self, run: Run):
        m = run.metrics
        self.run = run
        self.row = {k: i for i, k in enumerate(zip(m["model"], m["seed"], m["group"], m["condition"], m["level"]))}
        self.seeds = {model: sorted(set(g["seed"])) for model, g in m.groupby("model", sort=False)}

    def matrix(self, model: str, seeds, key) -> np.ndarray | None:
        rows = [self.row.get((model, s, *key)) for s in seeds]
        if any(r is None for r in rows):
            return None
        return self.run.correct[rows]

    def values(self, model: str, seeds, key) -> np.ndarray | None:
        """The accuracy column's values (for summary rows, whose per-example bits mean nothing)."""
        rows = [self.row.get((model, s, *key)) for s in seeds]
        if not rows or any(r is None for r in rows):
            return None
        return self.run.metrics["accuracy"].to_numpy(float)[rows]


# ------------------------------------------------------------------------------------ accuracies
def per_seed_table(run: Run, keys: pd.DataFrame) -> pd.DataFrame:
    m = run.metrics.copy()
    lo, hi = stats.wilson_interval(m["correct"].to_numpy(), m["n"].to_numpy())
    summary = ~m["group"].map(is_per_example).to_numpy(bool)
    m["lo"], m["hi"] = np.where(summary, np.nan, lo), np.where(summary, np.nan, hi)
    m = m.merge(keys, on=KEY, how="left")
    return m[["model", "role", "method", "arch", "seed", *KEY, "label", "n", "correct", "accuracy", "lo", "hi"]]


def accuracy_table(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per model and metric: mean over seeds, sample sd (nan for one seed), Wilson interval for one seed."""
    g = per_seed.groupby(["model", "role", "method", "arch", *KEY, "label"], sort=False)
    out = g.agg(seeds=("seed", "nunique"), accuracy=("accuracy", "mean"), sd=("accuracy", lambda a: a.std(ddof=1) if len(a) > 1 else np.nan),
                lo=("lo", "first"), hi=("hi", "first")).reset_index()  # fmt: skip
    multi = out["seeds"] > 1
    out.loc[multi, ["lo", "hi"]] = np.nan  # a Wilson interval describes one model, not a mean over seeds
    return out


# --------------------------------------------------------------------------------- compare pairs
def compare_list(run: Run) -> list[tuple[str, str]]:
    """(distilled, baseline) pairs: the manifest's, else the suite's, else same-architecture twins."""
    models = set(run.metrics["model"])
    for source in (run.manifest.get("compare"), (run.manifest.get("suite") or {}).get("compare")):
        if isinstance(source, list) and source:
            pairs = [(str(p.get("distilled")), str(p.get("baseline"))) for p in source if isinstance(p, dict)]
            pairs = [p for p in pairs if p[0] in models and p[1] in models]
            if pairs:
                return pairs
    roles = run.metrics.drop_duplicates("model")
    baselines = roles[roles["role"] == "baseline"]
    pairs = []
    for _, d in roles[roles["role"] == "distilled"].iterrows():
        twin = baselines[baselines["arch"] == d["arch"]]
        if len(twin):
            pairs.append((d["model"], twin["model"].iloc[0]))
    return pairs


def _seed_pairs(base_seeds: list[int], dist_seeds: list[int]) -> list[tuple[int, int]]:
    shared = sorted(set(base_seeds) & set(dist_seeds))
    if shared:
        return [(s, s) for s in shared]
    return list(zip(sorted(base_seeds), sorted(dist_seeds)))  # any pairing is valid on the same examples


def _teachers_of(run: Run, distilled: str) -> list[str]:
    teachers = list(dict.fromkeys(run.metrics.loc[run.metrics["role"] == "teacher", "model"]))
    named = run.agreement.loc[run.agreement["model"] == distilled, "teachers"]
    if len(named):
        listed = [t for t in re.split(r"[+,;\s]+", str(named.iloc[0])) if t in teachers]
        if listed:
            return listed
    return teachers if len(teachers) == 1 else []


def corruption_set(keys: pd.DataFrame) -> tuple[list[str], str]:
    present = list(dict.fromkeys(keys.loc[keys["group"] == "corruption", "condition"]))
    if not present:
        return [], ""
    if set(BENCHMARK_CORRUPTIONS) <= set(present):
        return list(BENCHMARK_CORRUPTIONS), "corruptions: mean of the 15"
    if set(present) <= set(BENCHMARK_CORRUPTIONS):
        return present, f"corruptions: mean of {len(present)} of the 15"
    return present, f"corruptions: mean of {len(present)}"


def _corruption_matrix(idx: _Index, keys: pd.DataFrame, names: list[str], model: str, seeds) -> np.ndarray | None:
    """(S, N) per-example share of corruption conditions a model gets right; None if any is missing."""
    ck = keys[(keys["group"] == "corruption") & keys["condition"].isin(names)][KEY].itertuples(index=False)
    mats = [idx.matrix(model, seeds, tuple(k)) for k in ck]
    if not mats or any(mat is None for mat in mats):
        return None
    return np.mean([mat.astype(float) for mat in mats], axis=0)


def pair_table(run: Run, idx: _Index, keys: pd.DataFrame, distilled: str, baseline: str, n_boot: int = N_BOOT) -> Pair:
    seed_pairs = _seed_pairs(idx.seeds.get(baseline, []), idx.seeds.get(distilled, []))
    bs = [p[0] for p in seed_pairs]
    ds = [p[1] for p in seed_pairs]
    teachers = _teachers_of(run, distilled)
    names, mean_label = corruption_set(keys)
    rows = []

    def add(key, label, a, b, test: bool):
        acc_a, acc_b = a.mean(axis=1), b.mean(axis=1)
        per_seed_diff = acc_b - acc_a
        row = dict(zip(KEY, key), label=label, seed_pairs=len(seed_pairs),
                   base_acc=acc_a.mean(), base_sd=acc_a.std(ddof=1) if len(acc_a) > 1 else np.nan,
                   dist_acc=acc_b.mean(), dist_sd=acc_b.std(ddof=1) if len(acc_b) > 1 else np.nan,
                   diff=per_seed_diff.mean(), diff_sd=per_seed_diff.std(ddof=1) if len(per_seed_diff) > 1 else np.nan)  # fmt: skip
        if len(seed_pairs) == 1 and test:
            n = a.shape[1]
            row["base_lo"], row["base_hi"] = stats.wilson_interval(int(a.sum()), n)
            row["dist_lo"], row["dist_hi"] = stats.wilson_interval(int(b.sum()), n)
        row["ci_lo"], row["ci_hi"] = stats.paired_difference_interval(a, b, n_boot=n_boot, seed=0)
        if test:
            mc = stats.mcnemar_exact(a, b, "two-sided")
            row.update(only_base=mc.only_a, only_dist=mc.only_b, p=mc.pvalue)
        for t in teachers:
            tm = idx.matrix(t, idx.seeds.get(t, []), key) if key[0] != MEAN_CORRUPTION else _corruption_matrix(idx, keys, names, t, idx.seeds.get(t, []))
            row[f"teacher:{t}"] = float(tm.mean()) if tm is not None else np.nan
        rows.append(row)

    def add_summary(key, label):
        """A summary row (no per-example results): its values side by side, nothing tested."""
        va, vb = idx.values(baseline, bs, key), idx.values(distilled, ds, key)
        if va is None or vb is None:
            return
        d = vb - va
        sd = lambda v: v.std(ddof=1) if len(v) > 1 else np.nan  # noqa: E731
        row = dict(zip(KEY, key), label=label, seed_pairs=len(seed_pairs), base_acc=va.mean(), base_sd=sd(va),
                   dist_acc=vb.mean(), dist_sd=sd(vb), diff=d.mean(), diff_sd=sd(d))  # fmt: skip
        for t in teachers:
            tv = idx.values(t, idx.seeds.get(t, []), key)
            row[f"teacher:{t}"] = float(tv.mean()) if tv is not None else np.nan
        rows.append(row)

    for *key, metric in keys[[*KEY, "label"]].itertuples(index=False):
        if not is_per_example(key[0]):
            add_summary(tuple(key), metric)
            continue
        a, b = idx.matrix(baseline, bs, tuple(key)), idx.matrix(distilled, ds, tuple(key))
        if a is not None and b is not None:
            add(tuple(key), metric, a, b, test=True)
    if names:
        a = _corruption_matrix(idx, keys, names, baseline, bs)
        b = _corruption_matrix(idx, keys, names, distilled, ds)
        if a is not None and b is not None:
            add((MEAN_CORRUPTION, MEAN_CORRUPTION, ""), mean_label, a, b, test=False)
    cols = [*KEY, "label", "seed_pairs", "base_acc", "base_sd", "base_lo", "base_hi", "dist_acc", "dist_sd", "dist_lo", "dist_hi",
            "diff", "diff_sd", "ci_lo", "ci_hi", "only_base", "only_dist", "p"] + [f"teacher:{t}" for t in teachers]  # fmt: skip
    table = pd.DataFrame(rows).reindex(columns=cols)
    return Pair(distilled, baseline, seed_pairs, teachers, table)


def apply_holm(pairs: list[Pair]) -> int:
    """Holm over every difference test in the report (all pairs, all metrics); returns the family size."""
    ps = np.concatenate([p.table["p"].to_numpy(dtype=float) for p in pairs]) if pairs else np.array([])
    adj = stats.holm(ps)
    at = 0
    for p in pairs:
        k = len(p.table)
        p.table["p_holm"] = adj[at : at + k]
        at += k
    return int(np.count_nonzero(~np.isnan(ps)))


# ------------------------------------------------------------------------ teachers, agreement, corruptions
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
        out.append(dict(model=model, teachers=str(g["teachers"].iloc[0]), seeds=len(g), agreement=vals.mean(),
                        sd=vals.std(ddof=1) if len(g) > 1 else np.nan,
                        per_seed=list(zip(g["seed"].astype(int), vals))))  # fmt: skip
    return pd.DataFrame(out)


def corruption_table(accuracy: pd.DataFrame, per_seed: pd.DataFrame) -> pd.DataFrame:
    """Model x corruption: accuracy averaged over severities and seeds (the heat map's numbers)."""
    c = per_seed[per_seed["group"] == "corruption"]
    if c.empty:
        return pd.DataFrame()
    models = list(dict.fromkeys(accuracy["model"]))
    names = list(dict.fromkeys(c["condition"]))
    # mean over severities per seed, then over seeds: every seed weighs the same
    t = c.groupby(["model", "condition", "seed"], sort=False)["accuracy"].mean().groupby(level=[0, 1], sort=False).mean()
    return t.unstack("model").reindex(index=names, columns=[m for m in models if m in set(c["model"])])


def mean_corruption_table(run: Run, idx: _Index, keys: pd.DataFrame) -> pd.DataFrame:
    names, _ = corruption_set(keys)
    rows = []
    if names:
        for model, seeds in idx.seeds.items():
            for s in seeds:
                mat = _corruption_matrix(idx, keys, names, model, [s])
                if mat is not None:
                    rows.append(dict(model=model, seed=s, accuracy=float(mat.mean())))
    return pd.DataFrame(rows, columns=["model", "seed", "accuracy"])


def mce_table(run: Run) -> tuple[pd.DataFrame | None, str]:
    """mCE and relative mCE (percent, 100 = the reference model the suite names), or a note why not."""
    if not (run.metrics["group"] == "corruption").any():
        return None, ""
    from ..conditions.corruptions.metrics import mce_table as corruption_mce

    suite = run.manifest.get("suite") if isinstance(run.manifest.get("suite"), dict) else {}
    corr = (suite.get("evaluate") or {}).get("corruptions") or {}
    reference = corr.get("reference_model") if isinstance(corr, dict) else None
    if not reference:
        return None, "mCE not shown: the suite names no evaluate.corruptions.reference_model"
    return corruption_mce(run.metrics, reference=reference), f"mCE relative to {reference} (100 = the reference)"


# ------------------------------------------------------------------------------------ provenance
VERSION_KEYS = ("kdbench_version", "python", "torch", "torchvision", "torchattacks", "git_commit", "device", "device_name", "cpu")
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
        "jobs_wall_s": float(pd.to_numeric(jobs.get("wall_s", pd.Series(dtype=float)), errors="coerce").sum()) if len(jobs) else 0.0,
        "suite_text": suite_text,
    }


# ------------------------------------------------------------------------------------------ build
def build(run: Run, n_boot: int = N_BOOT) -> ReportData:
    keys = metric_keys(run.metrics)
    per_seed = per_seed_table(run, keys)
    accuracy = accuracy_table(per_seed)
    idx = _Index(run)
    pairs = [pair_table(run, idx, keys, d, b, n_boot) for d, b in compare_list(run)]
    family = apply_holm(pairs)
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
        provenance=provenance(run),
        holm_family=family,
        masking=masking_table(run),
    )


def masking_table(run: Run) -> pd.DataFrame:
    """The flagged rows of diagnostics.csv (empty when nothing was flagged or nothing attacked)."""
    d = run.diagnostics
    if d is None or d.empty:
        return pd.DataFrame(columns=DIAGNOSTIC_COLUMNS)
    return d[d["flagged"]].reset_index(drop=True)


def masking_warning(masking: pd.DataFrame, models, eps: str | None = None) -> str:
    """'model: check, check' for the models whose robust accuracy a flagged check puts in doubt
    (checks at `eps`, and those that hold for every epsilon)."""
    parts = []
    for model in models:
        m = masking[masking["model"] == model]
        if eps is not None:
            m = m[(m["eps"] == eps) | (m["eps"] == "")]
        checks = list(dict.fromkeys(m["check"]))
        if checks:
            parts.append(f"{model}: {', '.join(checks)}")
    return "gradient masking suspected (" + "; ".join(parts) + ")" if parts else ""


STATISTICS_TEXT = (
    "Accuracy intervals are Wilson 95% score intervals for one trained model; over several seeds the "
    "table shows the mean and the sample standard deviation across seeds instead. Each difference "
    "(distilled − baseline, in percentage points) is tested with the exact McNemar test: on the same "
    "test examples only the discordant ones (one model right, the other wrong) carry information, and "
    "under equal accuracy each is a fair coin, so their split is Binomial(d, ½); with several seeds the "
    "discordant examples of the seed pairs are pooled. Its 95% interval is a paired percentile bootstrap "
    "({n_boot} resamples of the test examples, seeds averaged per example, fixed seed). The p-values are "
    "two-sided and Holm-corrected across all {family} differences in this report. These tests are "
    "conditional on the trained networks; the spread over seeds (± sd) is the training-randomness part."
)

MASKING_TEXT = (
    "These checks (Carlini et al. 2019; Athalye et al. 2018) say an attack may have been fooled by the "
    "model's gradients rather than stopped by its robustness, so the model's robust accuracy is an upper "
    "bound at best; the worst case over attacks is the number to read, and a flagged model must not be "
    "called more robust on cross-entropy attacks alone. Values and thresholds are "
    "fractions (0.03 = 3 points) except the logit margin. README: 'Gradient-masking checks'."
)
