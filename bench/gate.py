"""The CI regression gate: a run against a blessed baseline, metric by metric.

A metric is one (model, condition, level). It regresses only when both hold:
- its accuracy fell by more than the tolerance (percentage points; per condition group,
  condition or condition:level, with a default), and
- a one-sided test says the fall is real, after Holm's correction over every gated metric.

Which test follows from what changed, read from the weights hashes both manifests record
(never from the outcome):
- the same networks (every seed's weights hash equal: an evaluation-only change, or a
  bit-identical rerun): the exact one-sided McNemar test, seed k against seed k, pooled over the
  seed pairs. Pooling is exact here: with the networks fixed, each discordant example is a fair
  coin when nothing changed.
- retrained networks (any hash differs, or none was recorded): the method-level test of
  bench.stats (training randomness and test examples both vary), paired by seed when both runs
  trained the same seeds, else unpaired with the seed spread pooled over both sides, so a
  one-seed run can be tested against a baseline of several.
A metric whose test could not have detected a fall the size of its tolerance (its MDD at 80%
power, at the Bonferroni level alpha / m of the m gated tests, exceeds the tolerance, or no seed
spread exists to test against) is INCONCLUSIVE, never a silent pass: exit 0 by default, exit 4
with `--strict`.

Exit codes: 0 no regression; 1 a regression; 2 bad input (raised as ResultsError); 3 the runs
are not comparable (NotComparable: different evaluation specification, test examples or
missing metrics), saying what differs; 4 inconclusive metrics under --strict.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .levels import parse_fraction
from .report.format import DASH, mdd_pp, metric_label, pct, pvalue, signed_pp
from .report.markdown import md_escape, table
from .report.runs import GROUP_ORDER, is_per_example, load_run
from .results import ResultsError, Run

EXIT_OK, EXIT_REGRESSION, EXIT_NOT_COMPARABLE, EXIT_INCONCLUSIVE = 0, 1, 3, 4
DEFAULT_TOLERANCE_PP = 1.0
DEFAULT_ALPHA = 0.05
KEY = ["model", "group", "condition", "level"]


class NotComparable(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the runs are not comparable:\n  - " + "\n  - ".join(problems))


# -------------------------------------------------------------------------------- tolerances
@dataclass
class Tolerances:
    """Percentage points a metric may fall before it can regress; the most specific key wins:
    'condition:level' (level as stored, or k/255 for epsilons), then 'condition', then the group
    ('clean', 'noise', 'attack', 'corruption'), then the default."""

    default: float = DEFAULT_TOLERANCE_PP
    by_key: dict[str, float] = field(default_factory=dict)

    def lookup(self, group: str, condition: str, level: str) -> float:
        for key, tol in self.by_key.items():
            if ":" in key:
                cond, lvl = key.rsplit(":", 1)  # corruption conditions have a colon of their own: "c:fog:3"
                if cond == condition and _same_level(lvl, level):
                    return tol
        if condition in self.by_key:
            return self.by_key[condition]
        if group in self.by_key:
            return self.by_key[group]
        return self.default


def _level_number(text: str) -> float | None:
    try:
        return parse_fraction(str(text))
    except ValueError:
        return None


def _same_level(wanted: str, stored: str) -> bool:
    a, b = _level_number(wanted), _level_number(stored)
    if a is None or b is None:
        return str(wanted).strip() == str(stored)
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-9)


def _non_negative(value, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number of percentage points, found {value!r}") from None
    if not (v >= 0 and math.isfinite(v)):
        raise ValueError(f"{where}: a tolerance must be a finite number >= 0, found {value!r}")
    return v


def parse_tolerances(args: list[str] | None) -> tuple[float | None, dict[str, float]]:
    """`--tolerance PP` sets the default; `--tolerance KEY=PP` one group, condition or condition:level."""
    default, by_key = None, {}
    for arg in args or []:
        if "=" in arg:
            key, value = arg.split("=", 1)
            if not key.strip():
                raise ValueError(f"--tolerance {arg!r}: the key before '=' is empty")
            by_key[key.strip()] = _non_negative(value, f"--tolerance {arg}")
        else:
            default = _non_negative(arg, f"--tolerance {arg}")
    return default, by_key


def suite_gate_settings(run: Run) -> tuple[float | None, dict[str, float], float | None]:
    """The optional `gate:` section of the suite as run: tolerance, tolerances {key: pp}, alpha."""
    section = (run.manifest.get("suite") or {}).get("gate") if isinstance(run.manifest.get("suite"), dict) else None
    if not section:
        return None, {}, None
    where = run.path / "manifest.json"
    if not isinstance(section, dict):
        raise ResultsError(where, "suite.gate must be a mapping")
    try:
        default = _non_negative(section["tolerance"], "suite.gate.tolerance") if section.get("tolerance") is not None else None
        by_key = {str(k): _non_negative(v, f"suite.gate.tolerances.{k}") for k, v in (section.get("tolerances") or {}).items()}
        alpha = _alpha(section["alpha"], "suite.gate.alpha") if section.get("alpha") is not None else None
    except (ValueError, AttributeError) as exc:
        raise ResultsError(where, str(exc)) from None
    return default, by_key, alpha


def _alpha(value, where: str = "--alpha") -> float:
    try:
        a = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number in (0, 1), found {value!r}") from None
    if not 0 < a < 1:
        raise ValueError(f"{where}: expected a number in (0, 1), found {value!r}")
    return a


def settings(run: Run, tolerance_args: list[str] | None, alpha: float | None) -> tuple[Tolerances, float]:
    """Command line over the suite's `gate:` section over the defaults."""
    cli_default, cli_keys = parse_tolerances(tolerance_args)
    suite_default, suite_keys, suite_alpha = suite_gate_settings(run)
    tol = Tolerances(
        default=cli_default if cli_default is not None else suite_default if suite_default is not None else DEFAULT_TOLERANCE_PP,
        by_key={**suite_keys, **cli_keys},
    )
    a = _alpha(alpha) if alpha is not None else suite_alpha if suite_alpha is not None else DEFAULT_ALPHA
    return tol, a


# ---------------------------------------------------------------------------- comparability
REQUIRED = ("eval_spec_hash", "example_ids_sha256")


def _require_provenance(run: Run) -> None:
    for key in REQUIRED:
        if not run.manifest.get(key):
            raise ResultsError(run.path / "manifest.json", f"lacks '{key}', which the gate needs to know the runs are comparable")


def _dict_diff(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{p}: only in the run ({b[k]!r})")
            elif k not in b:
                out.append(f"{p}: only in the baseline ({a[k]!r})")
            else:
                out += _dict_diff(a[k], b[k], p)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _dict_diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: baseline {a!r}, run {b!r}"]


def _evaluation_spec(manifest: dict):
    return manifest.get("eval_spec")


def _suite_evaluate(manifest: dict):
    suite = manifest.get("suite")
    return suite.get("evaluate") if isinstance(suite, dict) else None


def comparability_problems(base: Run, run: Run) -> list[str]:
    problems = []
    bm, rm = base.manifest, run.manifest
    if bm.get("eval_spec_hash") != rm.get("eval_spec_hash"):
        msg = f"different evaluation specification (eval_spec_hash {bm.get('eval_spec_hash')} in the baseline, {rm.get('eval_spec_hash')} in the run)"
        be, re_, name = _evaluation_spec(bm), _evaluation_spec(rm), "eval_spec"
        if not (isinstance(be, dict) and isinstance(re_, dict)):
            be, re_, name = _suite_evaluate(bm), _suite_evaluate(rm), "evaluate"
        if isinstance(be, dict) and isinstance(re_, dict):
            diffs = _dict_diff(be, re_, name)
            if diffs:
                msg += "; " + "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
        problems.append(msg)
    same_index = len(base.example_index) == len(run.example_index) and np.array_equal(base.example_index, run.example_index)
    if bm.get("example_ids_sha256") != rm.get("example_ids_sha256") or not same_index:
        common = len(np.intersect1d(base.example_index, run.example_index))
        order = " (the same examples in another order)" if common == len(base.example_index) == len(run.example_index) and not same_index else ""
        problems.append(
            f"different test examples{order}: the baseline scored {len(base.example_index)}, the run {len(run.example_index)}, "
            f"{common} in common (example_ids_sha256 {bm.get('example_ids_sha256')} vs {rm.get('example_ids_sha256')})"
        )
    return problems


# ------------------------------------------------------------------------------- comparison
def _rows_by_key(run: Run) -> dict:
    m = run.metrics
    out: dict = {}
    for i, (model, group, cond, level, seed) in enumerate(zip(m["model"], m["group"], m["condition"], m["level"], m["seed"])):
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
        try:
            lv = float(level) if level != "" else -1.0
        except ValueError:
            lv = math.inf
        cond_rank = -1 if cond == "worst_case" else first_cond[cond]  # the headline robust accuracy leads its group
        return (first_model[model], GROUP_ORDER.index(group) if group in GROUP_ORDER else 9, cond_rank, lv)

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
    return run.correct[[rows[s] for s in seeds]]


def _test_metric(base: Run, run: Run, bs: dict, rs: dict, identity: str, alternative: str) -> dict:
    """The test for one metric, chosen from the runs' structure (never from the outcome); its MDD
    as a function of the level, which depends on the size of the Holm family."""
    if identity == "same" and sorted(bs) == sorted(rs):
        # the very networks of the baseline: each discordant example is a fair coin under "nothing
        # changed", so the seed pairs pool into one exact test
        seeds = sorted(bs)
        res = stats.mcnemar_exact(_matrix(base, bs, seeds), _matrix(run, rs, seeds), alternative)
        n = len(seeds) * base.correct.shape[1]
        mdd = lambda level: stats.mcnemar_mdd(res.only_a + res.only_b, n, level, one_sided=alternative != "two-sided")  # noqa: E731
        return dict(test=f"McNemar, same networks, {len(seeds)} seed(s) ({res.only_a} lost / {res.only_b} gained)", p=res.pvalue, mdd=mdd)
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


def compare_runs(base: Run, run: Run, alternative: str = "less", paired_examples: bool = True, alpha: float = DEFAULT_ALPHA) -> tuple[pd.DataFrame, list[str]]:
    """One row per metric in either run: accuracies (mean over seeds), difference run - base, the
    test chosen as the module says, its p-value, its MDD (at the Bonferroni level of the Holm
    family: alpha / number of tests) and the baseline's seed spread. Returns the
    table and the structural problems (metrics the baseline has that the run lacks)."""
    b_rows, r_rows = _rows_by_key(base), _rows_by_key(run)
    roles = {**dict(zip(base.metrics["model"], base.metrics["role"])), **dict(zip(run.metrics["model"], run.metrics["role"]))}
    identity = network_identity(base, run)
    problems, out = [], []
    run_models = {k[0] for k in r_rows}
    missing_models = sorted({k[0] for k in b_rows if k[0] not in run_models})
    if missing_models:
        problems.append(f"the run lacks models the baseline has: {', '.join(missing_models)}")
    # accuracies from the counts (what the tests use); summary rows only have their accuracy column
    b_acc = np.where(base.metrics["group"].map(is_per_example), base.metrics["correct"] / base.metrics["n"], base.metrics["accuracy"]).astype(float)
    r_acc = np.where(run.metrics["group"].map(is_per_example), run.metrics["correct"] / run.metrics["n"], run.metrics["accuracy"]).astype(float)
    missing = []
    for key in _order(list(dict.fromkeys([*b_rows, *r_rows])), [base.metrics, run.metrics]):
        model, group, cond, level = key
        row = dict(model=model, role=roles.get(model, ""), group=group, condition=cond, level=level, label=metric_label(group, cond, level))
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
        problems.append(f"the run lacks {len(missing)} metric(s) the baseline has: " + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    cols = [*KEY[:1], "role", *KEY[1:], "label", "status", "networks", "seeds_base", "seeds_run", "base_acc", "base_sd", "run_acc", "diff", "test", "p", "mdd"]
    table_ = pd.DataFrame(out, columns=cols)
    table_["p_holm"] = stats.holm(table_["p"].to_numpy(dtype=float))
    # MDD at the Bonferroni level of the family: a fall that large is caught however the other tests come out
    level = alpha / max(int(table_["p"].notna().sum()), 1)
    table_["mdd"] = [m(level) if callable(m) else np.nan for m in table_["mdd"]]
    return table_, problems


# -------------------------------------------------------------------------------------- gate
class GateUsageError(ValueError):
    """A bad flag value (exit 2)."""


@dataclass
class GateResult:
    table: pd.DataFrame
    exit_code: int
    markdown: str
    tolerances: Tolerances
    alpha: float
    notes: list[str] = field(default_factory=list)


def machine_notes(base: dict, run: dict) -> list[str]:
    """Where the two runs were computed, when that differs: results are deterministic on one
    machine, device and thread count only, so a small difference may come from there."""
    differ = []
    for key, what in (("device_name", "device"), ("cpu", "CPU"), ("threads", "torch threads")):
        if base.get(key) is not None and run.get(key) is not None and base.get(key) != run.get(key):
            differ.append(f"{what} {base[key]} in the baseline, {run[key]} in the run")
    if not differ:
        return []
    return ["The two runs were computed on different set-ups (" + "; ".join(differ) + "). Results repeat exactly only on one "
            "machine, device and thread count; differences within the tolerance may come from that alone."]  # fmt: skip


def evaluate(base: Run, run: Run, tolerances: Tolerances, alpha: float, strict: bool = False) -> GateResult:
    _require_provenance(base)
    _require_provenance(run)
    problems = comparability_problems(base, run)
    if problems:
        raise NotComparable(problems)
    t, structural = compare_runs(base, run, "less", alpha=alpha)
    if structural:
        raise NotComparable(structural)
    t["tolerance_pp"] = [tolerances.lookup(g, c, lv) for g, c, lv in zip(t["group"], t["condition"], t["level"])]
    gated = t["status"] == "both"
    falls = t["diff"] < -t["tolerance_pp"] / 100 - 1e-12
    significant = t["p_holm"] <= alpha
    # the test could not have seen a fall the size of the tolerance: say so rather than pass
    undecidable = t["p"].isna() | ~(t["mdd"] <= t["tolerance_pp"] / 100 + 1e-12)
    t["verdict"] = np.select(
        [t["status"] == "run only", t["status"] == "summary", gated & falls & significant, gated & undecidable, gated & falls],
        ["new, not gated", "summary, not gated", "REGRESSION", "INCONCLUSIVE", "fell, not significant"],
        default="ok",
    )
    if (t["verdict"] == "REGRESSION").any():
        code = EXIT_REGRESSION
    elif strict and (t["verdict"] == "INCONCLUSIVE").any():
        code = EXIT_INCONCLUSIVE
    else:
        code = EXIT_OK
    result = GateResult(t, code, "", tolerances, alpha, machine_notes(base.manifest, run.manifest))
    result.markdown = gate_markdown(result, base.path, run.path)
    return result


def gate_paths(run_dir, baseline_dir, tolerance_args=None, alpha=None, strict: bool = False) -> GateResult:
    """Load both (ResultsError on bad input), settle tolerances and alpha, and judge."""
    base = load_run(baseline_dir)
    run = load_run(run_dir)
    try:
        tol, a = settings(run, tolerance_args, alpha)
    except ValueError as exc:
        raise GateUsageError(str(exc)) from None
    return evaluate(base, run, tol, a, strict)


def gate_markdown(result: GateResult, base_path, run_path) -> str:
    t = result.table
    n_reg = int((t["verdict"] == "REGRESSION").sum())
    n_inc = int((t["verdict"] == "INCONCLUSIVE").sum())
    n_gated = int((t["status"] == "both").sum())
    head = "FAIL" if n_reg else "INCONCLUSIVE" if n_inc else "PASS"
    counts = f"{n_reg} regression{'s' if n_reg != 1 else ''}" + (f", {n_inc} inconclusive" if n_inc else "")
    tol = result.tolerances
    tol_text = f"{tol.default:g} pp" + ("".join(f", {k}: {v:g} pp" for k, v in tol.by_key.items()) if tol.by_key else "")
    lines = [
        f"## kdbench gate: {head} ({counts} in {n_gated} metrics)",
        "",
        md_escape(f"Run {run_path} against baseline {base_path}. A metric regresses when its accuracy falls by more than "
                  f"its tolerance ({tol_text}) and a one-sided test is significant at α = {result.alpha:g} after Holm's correction "
                  f"over the {n_gated} metrics. The test follows the networks: the same networks (equal weights hashes) re-evaluated get "
                  "the exact McNemar test pooled over seed pairs; retrained networks get the method-level test (seeds and test "
                  "examples both vary). A metric is INCONCLUSIVE when that test could not have detected a fall the size of its "
                  "tolerance (MDD at 80% power and the Bonferroni level α / m of the m tests above the tolerance, or too few seeds); "
                  "`kdbench gate --strict` fails on it (exit 4)."),
        "",
    ]  # fmt: skip
    lines += [md_escape(note) + "\n" for note in result.notes]
    if n_inc:
        inc = t[t["verdict"] == "INCONCLUSIVE"]
        lines += ["Inconclusive (the test cannot tell a fall of the tolerance's size): " + md_escape("; ".join(
            f"{m} {lbl} (MDD {mdd_pp(d)} pp, tolerance {tl:g} pp)" for m, lbl, d, tl in zip(inc["model"], inc["label"], inc["mdd"], inc["tolerance_pp"]))), ""]  # fmt: skip
    worst = t[(t["condition"] == "worst_case") & (t["status"] == "both")] if "condition" in t.columns else t.iloc[0:0]
    if len(worst):
        lines += ["Robust accuracy (worst case over the attacks, per example): " + md_escape("; ".join(
            f"{m} {lbl} {pct(b, 2)} → {pct(r, 2)} %" for m, lbl, b, r in zip(worst["model"], worst["label"], worst["base_acc"], worst["run_acc"]))), ""]  # fmt: skip
    if n_reg:
        reg = t[t["verdict"] == "REGRESSION"]
        lines += ["Regressions: " + md_escape("; ".join(f"{m} {lbl} {signed_pp(d)} pp" for m, lbl, d in zip(reg["model"], reg["label"], reg["diff"]))), ""]
    body = []
    first = t.assign(_k=(t["verdict"] != "INCONCLUSIVE").astype(int)).sort_values("_k", kind="stable")  # inconclusive first
    for r in first.itertuples(index=False):
        verdict = f"**{r.verdict}**" if r.verdict in ("REGRESSION", "INCONCLUSIVE") else r.verdict
        body.append([r.model, r.label, r.test, pct(r.base_acc, 2), pct(r.base_sd, 2) if r.seeds_base > 1 else DASH, pct(r.run_acc, 2),
                     signed_pp(r.diff, 2), f"{r.tolerance_pp:g}", mdd_pp(r.mdd), pvalue(r.p), pvalue(r.p_holm), verdict])  # fmt: skip
    header = ["model", "metric", "test", "baseline %", "baseline seed sd", "run %", "Δ pp", "tolerance pp", "MDD pp", "p (one-sided)", "p Holm", "verdict"]
    tbl = table(header, body, ["l", "l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "l"])
    return "\n".join(lines + [tbl, ""])


def append_step_summary(markdown: str, env=os.environ) -> Path | None:
    """Append to $GITHUB_STEP_SUMMARY when GitHub Actions sets it."""
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip("\n") + "\n\n")
    return path


# ------------------------------------------------------------------------------ compare (CLI)
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
    body = [[r.model, r.label, r.status, pct(r.base_acc, 2), pct(r.run_acc, 2), signed_pp(r.diff, 2), r.test, mdd_pp(r.mdd), pvalue(r.p), pvalue(r.p_holm)]
            for r in t.itertuples(index=False)]  # fmt: skip
    lines.append(table(["model", "metric", "in", "A %", "B %", "Δ pp (B − A)", "test", "MDD pp", "p (two-sided)", "p Holm"], body,
                       ["l", "l", "l", "r", "r", "r", "l", "r", "r", "r"]))  # fmt: skip
    return "\n".join(lines) + "\n"


def not_comparable_markdown(problems: list[str]) -> str:
    return "## kdbench gate: NOT COMPARABLE\n\n" + "\n".join(f"- {md_escape(p)}" for p in problems) + "\n"
