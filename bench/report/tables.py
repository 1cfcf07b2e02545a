"""Tidy tables from one run: what the HTML, Markdown and plots show, computed once.

Statistics per compare pair (distilled - baseline, on the same test examples):
- each accuracy: Wilson 95% interval (one seed) or mean and sample standard deviation over seeds;
- each difference (the headline): the method-level test of bench.stats, paired when both models
  were trained with the same seeds, unpaired otherwise; its interval and p-value count training
  randomness and the draw of test examples; its MDD says how small a difference the seeds can
  see, and the verdict says "too few seeds to tell" when the MDD exceeds the observed difference;
  Holm's correction runs over every difference in the report;
- per seed pair (detail only, about these trained networks): the exact McNemar test.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import stats
from ..names import corruption_condition, corruption_name
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
ALPHA = 0.05
MEANINGFUL = 0.01  # 1 pp, the gate's default tolerance: below it "too few seeds" is judged at 1 pp


@dataclass
class Pair:
    distilled: str
    baseline: str
    seed_pairs: list[tuple[int, int]]  # (baseline seed, distilled seed): the per-seed detail
    teachers: list[str]
    table: pd.DataFrame  # one row per metric plus the derived mean-corruption row
    design: str = "paired"  # the headline test: "paired" (same seeds) or "unpaired"
    seeds: tuple[list[int], list[int]] = ([], [])  # (baseline seeds, distilled seeds)
    method: str = ""  # the distilled model's method, for the verdict ("kd higher")
    per_seed: pd.DataFrame = field(default_factory=pd.DataFrame)  # McNemar per seed pair and metric
    role: str = "distilled"  # the first model's role: distilled, or control (no teacher: label smoothing)


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
    holm_family: int = 0  # tests in the headline family
    holm_detail: int = 0  # tests in the corruption-cell family
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
    from ..methods import METHODS

    roles = run.metrics.drop_duplicates("model")
    baselines = roles[roles["role"] == "baseline"]
    pairs = []
    for _, d in roles[roles["role"].isin(("distilled", "control"))].iterrows():
        method = str(d["method"])
        twin_method = METHODS.get(method).twin if method in METHODS else "baseline"
        twin = baselines[(baselines["arch"] == d["arch"]) & (baselines["method"] == twin_method)]
        if len(twin):
            pairs.append((d["model"], twin["model"].iloc[0]))
    return pairs


def _seed_pairs(base_seeds: list[int], dist_seeds: list[int]) -> list[tuple[int, int]]:
    """Seed k with seed k when both models have it; otherwise in order (any pairing is valid for a
    per-network McNemar test on the same examples)."""
    shared = sorted(set(base_seeds) & set(dist_seeds))
    if shared:
        return [(s, s) for s in shared]
    return list(zip(sorted(base_seeds), sorted(dist_seeds)))


def _role_of(run: Run, model: str) -> str:
    roles = run.metrics.loc[run.metrics["model"] == model, "role"]
    return str(roles.iloc[0]) if len(roles) else ""


def _teachers_of(run: Run, distilled: str) -> list[str]:
    if _role_of(run, distilled) != "distilled":  # a control (label smoothing) learns from no teacher
        return []
    teachers = list(dict.fromkeys(run.metrics.loc[run.metrics["role"] == "teacher", "model"]))
    named = run.agreement.loc[run.agreement["model"] == distilled, "teachers"]
    if len(named):
        listed = [t for t in re.split(r"[+,;\s]+", str(named.iloc[0])) if t in teachers]
        if listed:
            return listed
    return teachers if len(teachers) == 1 else []


def corruption_set(keys: pd.DataFrame) -> tuple[list[str], str]:
    """The corruption conditions the mean corruption accuracy averages (metrics.csv names), and its label."""
    present = list(dict.fromkeys(keys.loc[keys["group"] == "corruption", "condition"]))
    if not present:
        return [], ""
    plain = {corruption_name(c) for c in present}
    if set(BENCHMARK_CORRUPTIONS) <= plain:
        return [corruption_condition(c) for c in BENCHMARK_CORRUPTIONS], "corruptions: mean of the 15"
    if plain <= set(BENCHMARK_CORRUPTIONS):
        return present, f"corruptions: mean of {len(present)} of the 15"
    return present, f"corruptions: mean of {len(present)}"


def _corruption_matrix(idx: _Index, keys: pd.DataFrame, names: list[str], model: str, seeds) -> np.ndarray | None:
    """(S, N) per-example share of corruption conditions a model gets right; None if any is missing."""
    ck = keys[(keys["group"] == "corruption") & keys["condition"].isin(names)][KEY].itertuples(index=False)
    mats = [idx.matrix(model, seeds, tuple(k)) for k in ck]
    if not mats or any(mat is None for mat in mats):
        return None
    return np.mean([mat.astype(float) for mat in mats], axis=0)


def pair_table(run: Run, idx: _Index, keys: pd.DataFrame, distilled: str, baseline: str) -> Pair:
    base_seeds, dist_seeds = idx.seeds.get(baseline, []), idx.seeds.get(distilled, [])
    # Twins trained with the same seeds are compared seed k with seed k; anything else (other seeds,
    # a partial overlap) is the unpaired version of the same method-level test, on all seeds.
    design = "paired" if base_seeds and base_seeds == dist_seeds else "unpaired"
    bs, ds = (base_seeds, dist_seeds)
    seed_pairs = _seed_pairs(base_seeds, dist_seeds)
    teachers = _teachers_of(run, distilled)
    methods = run.metrics.loc[run.metrics["model"] == distilled, "method"]
    names, mean_label = corruption_set(keys)
    rows, per_seed = [], []
    sd = lambda v: float(v.std(ddof=1)) if len(v) > 1 else np.nan  # noqa: E731

    def add(key, label, a, b, binary: bool):
        acc_a, acc_b = a.mean(axis=1), b.mean(axis=1)
        test = stats.method_test_paired(a, b) if design == "paired" else stats.method_test_unpaired(a, b)
        row = dict(zip(KEY, key), label=label, seed_pairs=len(seed_pairs), base_seeds=len(bs), dist_seeds=len(ds),
                   base_acc=acc_a.mean(), base_sd=sd(acc_a), dist_acc=acc_b.mean(), dist_sd=sd(acc_b),
                   diff=test.difference, diff_sd=sd(acc_b - acc_a) if design == "paired" else np.nan,
                   ci_lo=test.ci[0], ci_hi=test.ci[1], p=test.pvalue, test=test)  # fmt: skip
        if len(bs) == 1 and len(ds) == 1 and binary:
            n = a.shape[1]
            row["base_lo"], row["base_hi"] = stats.wilson_interval(int(a.sum()), n)
            row["dist_lo"], row["dist_hi"] = stats.wilson_interval(int(b.sum()), n)
        if binary and key[0] != "corruption":
            for sb, sdist in seed_pairs:
                ra, rb = a[bs.index(sb)], b[ds.index(sdist)]
                mc = stats.mcnemar_exact(ra, rb, "two-sided")
                per_seed.append(dict(zip(KEY, key), label=label, base_seed=sb, dist_seed=sdist, base_acc=ra.mean(), dist_acc=rb.mean(),
                                     diff=rb.mean() - ra.mean(), only_base=mc.only_a, only_dist=mc.only_b, p=mc.pvalue))  # fmt: skip
        for t in teachers:
            tm = idx.matrix(t, idx.seeds.get(t, []), key) if key[0] != MEAN_CORRUPTION else _corruption_matrix(idx, keys, names, t, idx.seeds.get(t, []))
            row[f"teacher:{t}"] = float(tm.mean()) if tm is not None else np.nan
        rows.append(row)

    def add_summary(key, label):
        """A summary row (no per-example results): its values side by side, nothing tested."""
        va, vb = idx.values(baseline, bs, key), idx.values(distilled, ds, key)
        if va is None or vb is None:
            return
        row = dict(zip(KEY, key), label=label, seed_pairs=len(seed_pairs), base_seeds=len(bs), dist_seeds=len(ds), base_acc=va.mean(),
                   base_sd=sd(va), dist_acc=vb.mean(), dist_sd=sd(vb), diff=vb.mean() - va.mean(),
                   diff_sd=sd(vb - va) if design == "paired" else np.nan)  # fmt: skip
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
            add(tuple(key), metric, a, b, binary=True)
    if names:
        a = _corruption_matrix(idx, keys, names, baseline, bs)
        b = _corruption_matrix(idx, keys, names, distilled, ds)
        if a is not None and b is not None:
            add((MEAN_CORRUPTION, MEAN_CORRUPTION, ""), mean_label, a, b, binary=False)
    cols = [*KEY, "label", "seed_pairs", "base_seeds", "dist_seeds", "base_acc", "base_sd", "base_lo", "base_hi", "dist_acc", "dist_sd",
            "dist_lo", "dist_hi", "diff", "diff_sd", "ci_lo", "ci_hi", "p", "mdd", "test"] + [f"teacher:{t}" for t in teachers]  # fmt: skip
    table = pd.DataFrame(rows).reindex(columns=cols)
    per_seed_cols = [*KEY, "label", "base_seed", "dist_seed", "base_acc", "dist_acc", "diff", "only_base", "only_dist", "p"]
    return Pair(distilled, baseline, seed_pairs, teachers, table, design, (list(bs), list(ds)),
                str(methods.iloc[0]) if len(methods) else distilled, pd.DataFrame(per_seed, columns=per_seed_cols),
                "distilled" if _role_of(run, distilled) == "distilled" else "control")  # fmt: skip


def verdict(diff, p_holm, mdd, method: str, alpha: float = ALPHA) -> str:
    """The headline's words. A significant difference says its direction; otherwise "too few seeds
    to tell" when the design could not have detected a difference of the observed size (or of
    MEANINGFUL, for tiny ones), and "no detectable difference" when it could have and did not."""
    if diff is None or not np.isfinite(diff):
        return ""
    if np.isfinite(p_holm) and p_holm <= alpha:
        return f"{method} higher" if diff > 0 else f"{method} lower"
    if not np.isfinite(mdd) or mdd > max(abs(diff), MEANINGFUL):
        return "too few seeds to tell"
    return "no detectable difference"


HEADLINE_GROUPS = ("clean", MEAN_CORRUPTION, "noise", "attack")  # then any other group; corruption cells are detail


def headline_groups(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """A pair table's headline rows as (group, rows) in the report's order: clean, mean corruption,
    noise per sigma, attacks per epsilon (each possibly empty), then "other": the rows of any other
    group, in table order. Corruption cells are left out."""
    other = table[~table["group"].isin((*HEADLINE_GROUPS, "corruption"))]
    return [(g, table[table["group"] == g]) for g in HEADLINE_GROUPS] + [("other", other)]


def holm_family(group: str) -> str:
    """The headline questions form one Holm family; the corruption-by-severity cells another, so
    that 75 detail cells do not dilute the headline (and vice versa)."""
    return "detail" if group == "corruption" else "headline"


def apply_holm(pairs: list[Pair]) -> dict[str, int]:
    """Holm within each family over all pairs; the MDD at the family's Bonferroni level alpha / m (a
    difference that large is detected whatever the other tests do); the verdict. Returns the
    family sizes."""
    sizes = {}
    for fam in ("headline", "detail"):
        masks = [p.table["group"].map(holm_family).eq(fam).to_numpy(bool) for p in pairs]
        ps = np.concatenate([p.table["p"].to_numpy(float)[m] for p, m in zip(pairs, masks)]) if pairs else np.array([])
        adj = stats.holm(ps)
        sizes[fam] = int(np.count_nonzero(~np.isnan(ps)))
        at = 0
        for p, m in zip(pairs, masks):
            k = int(m.sum())
            p.table.loc[m, "p_holm"] = adj[at : at + k]
            at += k
    for p in pairs:
        t = p.table
        if "p_holm" not in t:
            t["p_holm"] = np.nan
        level = [ALPHA / max(sizes[holm_family(g)], 1) for g in t["group"]]
        t["mdd"] = [test.mdd_at(a) if isinstance(test, stats.MethodTest) else np.nan for test, a in zip(t["test"], level)]
        tested = [isinstance(test, stats.MethodTest) for test in t["test"]]
        t["verdict"] = [verdict(d, ph, m, p.method) if ok else "" for d, ph, m, ok in zip(t["diff"], t["p_holm"], t["mdd"], tested)]
    return sizes


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
    t = t.unstack("model").reindex(index=names, columns=[m for m in models if m in set(c["model"])])
    return t.rename(index=corruption_name)  # rows name corruptions: "fog", not "c:fog"


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
def build(run: Run) -> ReportData:
    keys = metric_keys(run.metrics)
    per_seed = per_seed_table(run, keys)
    accuracy = accuracy_table(per_seed)
    idx = _Index(run)
    # distilled students first, controls (no teacher) after: the order of every section
    pairs = sorted((pair_table(run, idx, keys, d, b) for d, b in compare_list(run)), key=lambda p: p.role != "distilled")
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
        provenance=provenance(run),
        holm_family=families["headline"],
        holm_detail=families["detail"],
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
    "Each difference is distilled − baseline in percentage points, a claim about the method (this "
    "architecture and recipe), so its 95% interval and p-value count both sources of chance: retraining "
    "(the spread between seeds) and the draw of test examples (examples on which one method is "
    "systematically better). They come from the seeds × examples table of per-example results, a "
    "crossed random-effects design whose two variance parts are combined by Banerjee's (1960) rule; "
    "twins trained with the same seeds are compared seed by seed (paired), otherwise the seed spread is "
    "pooled over the two models (unpaired, Student's equal-variance assumption). The test needs two or "
    "more seeds; MDD is the smallest true difference it detects with 80% power at the 5% level, and a "
    "row reads \"too few seeds to tell\" when the MDD exceeds the observed difference (or 1 pp, for "
    "smaller ones). p Holm is corrected within two families: the {family} headline differences, and "
    "the {detail} corruption-by-severity cells; the MDD is taken at the family's Bonferroni level "
    "(5% / family size), which Holm never needs to go below. The exact McNemar tests per seed pair "
    "(detail) are about those two trained networks on this test set only. scripts/calibrate_stats.py "
    "checks the error rates by simulation; README: 'Statistics'."
)

MASKING_TEXT = (
    "These checks (Carlini et al. 2019; Athalye et al. 2018) say an attack may have been fooled by the "
    "model's gradients rather than stopped by its robustness, so the model's robust accuracy is an upper "
    "bound at best; the worst case over attacks is the number to read, and a flagged model must not be "
    "called more robust on cross-entropy attacks alone. Values and thresholds are "
    "fractions (0.03 = 3 points) except the logit margin. README: 'Gradient-masking checks'."
)
