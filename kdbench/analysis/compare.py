"""Run B against run A, metric by metric: accuracies, differences, and the test that fits what
changed (the same networks: exact McNemar; retrained: the method-level test). `kdbench compare`
prints it; the gate judges it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kdbench.analysis import mcnemar, stats
from kdbench.analysis.comparability import comparability_problems
from kdbench.analysis.tolerances import DEFAULT_ALPHA
from kdbench.results.checks import is_per_example, load_run
from kdbench.results.contract import Run
from kdbench.util.format import DASH, mdd_pp, metric_label, pct, pvalue, signed_pp
from kdbench.util.levels import level_value
from kdbench.util.markdown import md_escape, table
from kdbench.util.names import metric_rank

KEY = ["model", "group", "condition", "level"]


def _rows_by_key(run: Run) -> dict:
    m = run.metrics
    out: dict = {}
    for i, (model, group, cond, level, seed) in enumerate(
        zip(m["model"], m["group"], m["condition"], m["level"], m["seed"])
    ):
        out.setdefault((model, group, cond, level), {})[int(seed)] = i
    return out


def _order(keys: list[tuple], metrics_frames: list[pd.DataFrame]) -> list[tuple]:
    first_model, first_cond = {}, {}
    for m in metrics_frames:
        for model in m["model"]:
            first_model.setdefault(model, len(first_model))
        for c in m["condition"]:
            first_cond.setdefault(c, len(first_cond))

    def sort_key(k):
        model, group, cond, level = k
        return (first_model[model], *metric_rank(group, cond, level_value(level), first_cond))

    return sorted(keys, key=sort_key)


def network_identity(base: Run, run: Run) -> dict[str, str]:
    """Per model on both sides: "same" when every seed's weights hash is recorded and equal on
    both sides (the same networks, re-evaluated), else "retrained" (or "unknown", no hashes)."""
    bw, rw = base.manifest.get("weights_sha256"), run.manifest.get("weights_sha256")
    out = {}
    for model in set(base.metrics["model"]) & set(run.metrics["model"]):
        b = bw.get(model) if isinstance(bw, dict) else None
        r = rw.get(model) if isinstance(rw, dict) else None
        if not isinstance(b, dict) or not isinstance(r, dict) or not b or not r:
            out[model] = "unknown"
        else:
            out[model] = "same" if b == r else "retrained"
    return out


def _matrix(run: Run, rows: dict, seeds) -> np.ndarray:
    return run.correct_rows([rows[s] for s in seeds])


def _test_metric(base: Run, run: Run, bs: dict, rs: dict, identity: str, alternative: str) -> dict:
    """The test for one metric, chosen from the runs' structure (never from the outcome); its MDD
    as a function of the level, which depends on the size of the Holm family."""
    if identity == "same" and sorted(bs) == sorted(rs):
        # the very networks of the baseline: each discordant example is a fair coin under "nothing
        # changed", so the seed pairs pool into one exact test
        seeds = sorted(bs)
        a, b = _matrix(base, bs, seeds), _matrix(run, rs, seeds)
        res = mcnemar.mcnemar_exact(a, b, alternative)
        n = a.size
        mdd = lambda level: mcnemar.mcnemar_mdd(res.only_a + res.only_b, n, level, one_sided=alternative != "two-sided")  # noqa: E731
        return dict(
            test=f"McNemar, same networks, {len(seeds)} seed(s) ({res.only_a} lost / {res.only_b} gained)",
            p=res.pvalue,
            mdd=mdd,
        )
    why = "retrained" if identity == "retrained" else "weights unrecorded"
    a, b = _matrix(base, bs, sorted(bs)), _matrix(run, rs, sorted(rs))
    if sorted(bs) == sorted(rs) and len(bs) >= 2:
        t = stats.method_test_paired(a, b, alternative)
        name = f"method-level, {why}, paired over {len(bs)} seeds"
    else:
        t = stats.method_test_unpaired(a, b, alternative)
        name = f"method-level, {why}, {len(bs)} vs {len(rs)} seeds"
    if not t.testable:
        name = f"{why}, {len(bs)} vs {len(rs)} seed(s): no seed spread to test against"
    return dict(test=name, p=t.pvalue, mdd=t.mdd_at)


def compare_runs(
    base: Run, run: Run, alternative: str = "less", paired_examples: bool = True, alpha: float = DEFAULT_ALPHA
) -> tuple[pd.DataFrame, list[str]]:
    """One row per metric in either run: accuracies (mean over seeds), difference run - base, the
    test chosen as the module says, its p-value, its MDD (at the Bonferroni level of the Holm
    family: alpha / number of tests) and the baseline's seed spread. Returns the
    table and the structural problems (metrics the baseline has that the run lacks)."""
    b_rows, r_rows = _rows_by_key(base), _rows_by_key(run)
    roles = {
        **dict(zip(base.metrics["model"], base.metrics["role"])),
        **dict(zip(run.metrics["model"], run.metrics["role"])),
    }
    identity = network_identity(base, run)
    problems, out = [], []
    run_models = {k[0] for k in r_rows}
    missing_models = sorted({k[0] for k in b_rows if k[0] not in run_models})
    if missing_models:
        problems.append(f"the run lacks models the baseline has: {', '.join(missing_models)}")
    # accuracies from the counts (what the tests use); summary rows only have their accuracy column
    b_acc = np.where(
        base.metrics["group"].map(is_per_example), base.metrics["correct"] / base.metrics["n"], base.metrics["accuracy"]
    ).astype(float)
    r_acc = np.where(
        run.metrics["group"].map(is_per_example), run.metrics["correct"] / run.metrics["n"], run.metrics["accuracy"]
    ).astype(float)
    missing = []
    for key in _order(list(dict.fromkeys([*b_rows, *r_rows])), [base.metrics, run.metrics]):
        model, group, cond, level = key
        row = dict(
            model=model,
            role=roles.get(model, ""),
            group=group,
            condition=cond,
            level=level,
            label=metric_label(group, cond, level),
        )
        bs, rs = b_rows.get(key, {}), r_rows.get(key, {})
        row.update(seeds_base=len(bs), seeds_run=len(rs), networks=identity.get(model, ""))
        base_accs = [b_acc[i] for i in bs.values()]
        row["base_acc"] = float(np.mean(base_accs)) if bs else np.nan
        row["base_sd"] = float(np.std(base_accs, ddof=1)) if len(bs) > 1 else np.nan
        row["run_acc"] = float(np.mean([r_acc[i] for i in rs.values()])) if rs else np.nan
        row["diff"] = row["run_acc"] - row["base_acc"]
        row["test"], row["p"], row["mdd"], row["status"] = DASH, np.nan, np.nan, "both"
        if not rs:
            row["status"] = "baseline only"
            if model not in missing_models:  # a whole missing model is reported once, above
                missing.append(f"{model} {row['label']}")
        elif not bs:
            row["status"] = "run only"
        elif not is_per_example(group):
            row["status"] = "summary"
        elif paired_examples:
            row.update(_test_metric(base, run, bs, rs, identity.get(model, "unknown"), alternative))
        out.append(row)
    if missing:
        problems.append(
            f"the run lacks {len(missing)} metric(s) the baseline has: "
            + ", ".join(missing[:10])
            + (" ..." if len(missing) > 10 else "")
        )
    cols = [
        *KEY[:1],
        "role",
        *KEY[1:],
        "label",
        "status",
        "networks",
        "seeds_base",
        "seeds_run",
        "base_acc",
        "base_sd",
        "run_acc",
        "diff",
        "test",
        "p",
        "mdd",
    ]
    table_ = pd.DataFrame(out, columns=cols)
    table_["p_holm"] = stats.holm(table_["p"].to_numpy(dtype=float))
    # MDD at the Bonferroni level of the family: a fall that large is caught however the other tests come out
    level = alpha / max(int(table_["p"].notna().sum()), 1)
    table_["mdd"] = [m(level) if callable(m) else np.nan for m in table_["mdd"]]
    return table_, problems


def compare_paths(run_a, run_b) -> tuple[pd.DataFrame, Run, Run, list[str], list[str]]:
    """Metric-by-metric differences B - A with two-sided tests, none when the runs are not
    comparable; (table, run A, run B, comparability problems, structural notes)."""
    a, b = load_run(run_a), load_run(run_b)
    problems = comparability_problems(a, b)
    t, structural = compare_runs(a, b, "two-sided", paired_examples=not problems)
    if problems:
        t["p"] = np.nan
        t["p_holm"] = np.nan
        t["test"] = DASH
    return t, a, b, problems, structural


def compare_markdown(run_a, run_b) -> str:
    """Metric-by-metric differences B - A; paired two-sided tests when the runs are comparable."""
    t, a, b, problems, structural = compare_paths(run_a, run_b)
    lines = [f"## {md_escape(b.path)} − {md_escape(a.path)}", ""]
    if problems:
        lines += [md_escape("No paired tests: " + "; ".join(problems)), ""]
    if structural:
        lines += [md_escape("Note: " + "; ".join(structural)), ""]
    body = [
        [
            r.model,
            r.label,
            r.status,
            pct(r.base_acc, 2),
            pct(r.run_acc, 2),
            signed_pp(r.diff, 2),
            r.test,
            mdd_pp(r.mdd),
            pvalue(r.p),
            pvalue(r.p_holm),
        ]
        for r in t.itertuples(index=False)
    ]
    lines.append(
        table(
            ["model", "metric", "in", "A %", "B %", "Δ pp (B − A)", "test", "MDD pp", "p (two-sided)", "p Holm"],
            body,
            ["l", "l", "l", "r", "r", "r", "l", "r", "r", "r"],
        )
    )
    return "\n".join(lines) + "\n"


def not_comparable_markdown(problems: list[str]) -> str:
    return "## kdbench gate: NOT COMPARABLE\n\n" + "\n".join(f"- {md_escape(p)}" for p in problems) + "\n"
