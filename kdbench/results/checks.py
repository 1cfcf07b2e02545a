"""Reading a run directory for the report, the gate and the exports: contract.read_run plus the
checks they rely on.

read_run guarantees the files parse and the per-example bits add up to `correct`. The readers
also rely on every row covering all the run's examples and on `accuracy` saying the same as
`correct / n` (a metrics.csv cut inside its last number still parses), so those are checked
here, and anything unexpected while reading becomes a ResultsError naming the file: a broken
input is the user's to fix and must never surface as a traceback.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdbench.results.contract import ROLES, ResultsError, Run
from kdbench.results.read import read_run
from kdbench.util.names import GROUP_ORDER

# Rows of these groups carry real per-example results. Any other group is a summary row (say a
# mean over other rows) whose per-example bits mean nothing: shown, never tested per example.
PER_EXAMPLE_GROUPS = GROUP_ORDER


def is_per_example(group) -> bool:
    return group in PER_EXAMPLE_GROUPS


def load_run(path) -> Run:
    path = Path(path)
    try:
        run = read_run(path)
    except ResultsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure is still a bad input file
        raise ResultsError(path, f"unreadable run directory ({type(exc).__name__}: {exc})") from None
    check_run(run)
    return run


def check_run(run: Run) -> None:
    manifest_file = run.path / "manifest.json"
    metrics_file = run.path / "metrics.csv"
    if not isinstance(run.manifest, dict):
        raise ResultsError(manifest_file, "expected a JSON object at the top level")
    m = run.metrics
    n_examples = len(run.example_index)
    if len(m) == 0:
        raise ResultsError(metrics_file, "holds no metric rows (truncated?)")
    bad_role = ~m["role"].isin(ROLES)
    if bad_role.any():
        i = int(np.flatnonzero(bad_role)[0])
        raise ResultsError(metrics_file, f"line {i + 2}: role {m['role'].iloc[i]!r} is not one of {', '.join(ROLES)}")
    # a row covers the first n examples: all of them, or a condition's own n (results format 3)
    n_rows = m["n"].to_numpy()
    bad_n = (
        (n_rows > n_examples) | (n_rows < 1) | ((n_rows != n_examples) & (run.manifest.get("results_format", 1) < 3))
    )
    if bad_n.any():
        i = int(np.flatnonzero(bad_n)[0])
        raise ResultsError(metrics_file, f"line {i + 2}: n = {m['n'].iloc[i]} but the run scored {n_examples} examples")
    beyond = np.arange(n_examples)[None, :] >= n_rows[:, None]
    if (run.correct & beyond).any():
        i = int(np.flatnonzero((run.correct & beyond).any(1))[0])
        raise ResultsError(
            run.path / "per_example.npz",
            f"row {i}: correct past the first n = {n_rows[i]} examples its metrics row covers",
        )
    expected = m["correct"].to_numpy() / np.maximum(m["n"].to_numpy(), 1)
    acc = m["accuracy"].to_numpy(dtype=float)
    per_example = m["group"].isin(PER_EXAMPLE_GROUPS).to_numpy()
    bad_acc = ~(np.abs(acc - expected) <= 1e-6) & per_example  # NaN counts as bad
    bad_acc |= ~np.isfinite(acc)
    if bad_acc.any():
        i = int(np.flatnonzero(bad_acc)[0])
        raise ResultsError(
            metrics_file, f"line {i + 2}: accuracy {acc[i]} is not correct/n = {expected[i]:.6g} (truncated?)"
        )
    keys = m[["model", "seed", "group", "condition", "level"]]
    dup = keys.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise ResultsError(metrics_file, f"line {i + 2}: a second row for {tuple(keys.iloc[i])}")
    a = run.agreement
    if len(a):
        agreement_file = run.path / "agreement.csv"
        expected = a["agree"].to_numpy() / np.maximum(a["n"].to_numpy(), 1)
        got = a["agreement"].to_numpy(dtype=float)
        bad = ~(np.abs(got - expected) <= 1e-6) | (a["agree"].to_numpy() > a["n"].to_numpy())
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ResultsError(
                agreement_file, f"line {i + 2}: agreement {got[i]} is not agree/n = {expected[i]:.6g} (truncated?)"
            )
    if len(np.unique(run.example_index)) != n_examples:
        raise ResultsError(run.path / "per_example.npz", "example_index repeats an example")
