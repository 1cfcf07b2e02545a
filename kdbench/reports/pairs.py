"""Tidy tables from one run: what the HTML, Markdown and plots show, computed once.

Statistics per compare pair (distilled - baseline, on the same test examples):
- each accuracy: Wilson 95% interval (one seed) or mean and sample standard deviation over seeds;
- each difference (the headline): the method-level test of kdbench.analysis.stats, paired when both models
  were trained with the same seeds, unpaired otherwise; its interval and p-value count training
  randomness and the draw of test examples; its MDD says how small a difference the seeds can
  see, and the verdict says "too few seeds to tell" when the MDD exceeds the observed difference;
  Holm's correction runs over every difference in the report;
- per seed pair (detail only, about these trained networks): the exact McNemar test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from kdbench.analysis import mcnemar, stats
from kdbench.reports.keys import KEY, MEAN_CORRUPTION, MetricIndex, corruption_matrix, corruption_set
from kdbench.results.checks import is_per_example
from kdbench.results.contract import Run

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


def compare_list(run: Run) -> list[tuple[str, str]]:
    """(distilled, baseline) pairs: the manifest's, else the suite's, else same-architecture twins."""
    models = set(run.metrics["model"])
    for source in (run.manifest.get("compare"), (run.manifest.get("suite") or {}).get("compare")):
        if isinstance(source, list) and source:
            pairs = [(str(p.get("distilled")), str(p.get("baseline"))) for p in source if isinstance(p, dict)]
            pairs = [p for p in pairs if p[0] in models and p[1] in models]
            if pairs:
                return pairs
    from kdbench.training.methods import twin_pairs

    models = run.metrics.drop_duplicates("model")
    students = models[models["role"].isin(("distilled", "control", "baseline"))]
    return twin_pairs(zip(students["model"], students["arch"], students["method"].astype(str), students["role"]))


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


def pair_table(run: Run, idx: MetricIndex, keys: pd.DataFrame, distilled: str, baseline: str) -> Pair:
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

    def side_by_side(key, label, va, vb, diff) -> dict:
        """A row's columns that every metric has: the two sides' per-seed values and their difference."""
        return dict(
            zip(KEY, key),
            label=label,
            seed_pairs=len(seed_pairs),
            base_seeds=len(bs),
            dist_seeds=len(ds),
            base_acc=va.mean(),
            base_sd=sd(va),
            dist_acc=vb.mean(),
            dist_sd=sd(vb),
            diff=diff,
            diff_sd=sd(vb - va) if design == "paired" else np.nan,
        )

    def add(key, label, a, b, binary: bool):
        acc_a, acc_b = a.mean(axis=1), b.mean(axis=1)
        test = stats.method_test_paired(a, b) if design == "paired" else stats.method_test_unpaired(a, b)
        row = side_by_side(key, label, acc_a, acc_b, test.difference)
        row.update(ci_lo=test.ci[0], ci_hi=test.ci[1], p=test.pvalue, test=test)
        if len(bs) == 1 and len(ds) == 1 and binary:
            n = a.shape[1]
            row["base_lo"], row["base_hi"] = mcnemar.wilson_interval(int(a.sum()), n)
            row["dist_lo"], row["dist_hi"] = mcnemar.wilson_interval(int(b.sum()), n)
        if binary and key[0] != "corruption":
            for sb, sdist in seed_pairs:
                ra, rb = a[bs.index(sb)], b[ds.index(sdist)]
                mc = mcnemar.mcnemar_exact(ra, rb, "two-sided")
                per_seed.append(
                    dict(
                        zip(KEY, key),
                        label=label,
                        base_seed=sb,
                        dist_seed=sdist,
                        base_acc=ra.mean(),
                        dist_acc=rb.mean(),
                        diff=rb.mean() - ra.mean(),
                        only_base=mc.only_a,
                        only_dist=mc.only_b,
                        p=mc.pvalue,
                    )
                )
        for t in teachers:
            tm = (
                idx.matrix(t, idx.seeds.get(t, []), key)
                if key[0] != MEAN_CORRUPTION
                else corruption_matrix(idx, keys, names, t, idx.seeds.get(t, []))
            )
            row[f"teacher:{t}"] = float(tm.mean()) if tm is not None else np.nan
        rows.append(row)

    def add_summary(key, label):
        """A summary row (no per-example results): its values side by side, nothing tested."""
        va, vb = idx.values(baseline, bs, key), idx.values(distilled, ds, key)
        if va is None or vb is None:
            return
        row = side_by_side(key, label, va, vb, vb.mean() - va.mean())
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
        a = corruption_matrix(idx, keys, names, baseline, bs)
        b = corruption_matrix(idx, keys, names, distilled, ds)
        if a is not None and b is not None:
            add((MEAN_CORRUPTION, MEAN_CORRUPTION, ""), mean_label, a, b, binary=False)
    cols = [
        *KEY,
        "label",
        "seed_pairs",
        "base_seeds",
        "dist_seeds",
        "base_acc",
        "base_sd",
        "base_lo",
        "base_hi",
        "dist_acc",
        "dist_sd",
        "dist_lo",
        "dist_hi",
        "diff",
        "diff_sd",
        "ci_lo",
        "ci_hi",
        "p",
        "mdd",
        "test",
    ] + [f"teacher:{t}" for t in teachers]
    table = pd.DataFrame(rows).reindex(columns=cols)
    per_seed_cols = [
        *KEY,
        "label",
        "base_seed",
        "dist_seed",
        "base_acc",
        "dist_acc",
        "diff",
        "only_base",
        "only_dist",
        "p",
    ]
    return Pair(
        distilled,
        baseline,
        seed_pairs,
        teachers,
        table,
        design,
        (list(bs), list(ds)),
        str(methods.iloc[0]) if len(methods) else distilled,
        pd.DataFrame(per_seed, columns=per_seed_cols),
        "distilled" if _role_of(run, distilled) == "distilled" else "control",
    )


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
        t["mdd"] = [
            test.mdd_at(a) if isinstance(test, stats.MethodTest) else np.nan for test, a in zip(t["test"], level)
        ]
        tested = [isinstance(test, stats.MethodTest) for test in t["test"]]
        t["verdict"] = [
            verdict(d, ph, m, p.method) if ok else "" for d, ph, m, ok in zip(t["diff"], t["p_holm"], t["mdd"], tested)
        ]
    return sizes
