"""The small public Python API, for notebooks and scripts: `import kdbench`.

    suite = kdbench.load_suite("suites/smoke.yaml", overrides=["train.epochs=2"])
    run_dir = kdbench.run(suite, data_root="../shared/data/cifar10-jpeg", out="results")
    for sentence in kdbench.verdicts(run_dir):
        print(sentence)
    kdbench.report(run_dir, "reports/smoke.html")

Everything here is what the command line does, minus parsing and printing: the same suite gives
the same jobs, hashes and numbers either way. Bad input raises the errors the command line turns
into exit code 2 (`SuiteError`, `ResultsError`, `DataError`, ...), with the same messages.
"""

from __future__ import annotations

import os
from pathlib import Path

from kdbench.config import Suite
from kdbench.config import SuiteError as SuiteError  # re-exported: kdbench.SuiteError
from kdbench.config import load_suite as _load_suite


def load_suite(path: str | os.PathLike, overrides: list[str] | None = None) -> Suite:
    """A validated suite from a YAML file; `overrides` as the command line's --set ("key.path=value")."""
    return _load_suite(Path(path), overrides)


def run(
    suite: Suite | str | os.PathLike,
    *,
    data_root=None,
    out: str | os.PathLike = "results",
    cache_dir=None,
    device: str = "auto",
    threads: int | None = None,
    jobs: int = 1,
    force: bool = False,
    track=(),
    portable: bool = False,
    log=None,
) -> Path:
    """Train what is missing, evaluate, and write the run directory; returns its path. `jobs` > 1
    runs that many jobs at once in worker processes (`threads` each); `log` receives progress lines
    (default: none); `track` names experiment trackers ("mlflow", "tensorboard", "wandb"), offline by default.
    `portable` (or the suite's `reproducible: portable`) needs its environment set before torch was
    imported (docs/reproducibility.md), and refuses clearly without it."""
    from kdbench.pipeline.options import RunOptions

    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    if portable:
        suite = suite.model_copy(update={"reproducible": "portable"})
    options = RunOptions.of(
        data_root=data_root,
        out=out,
        cache_dir=cache_dir,
        device=device,
        force=force,
        jobs=jobs,
        threads=threads,
        track=tuple(track),
        log=log or (lambda _: None),
    )
    return run_with(suite, options)


def run_with(suite: Suite, options):
    """Run `suite` with `options` (pipeline.options.RunOptions), the runs index and the options'
    trackers listening: what `kdbench run` and `kdbench.run` both call."""
    from kdbench.index.hook import IndexHook
    from kdbench.pipeline.run import run_suite

    hooks = [IndexHook(str(options.out))]
    if options.track:
        from kdbench.tracking.hook import TrackingHook

        hooks.append(TrackingHook(options.track, str(options.out)))
    return run_suite(suite, options, hooks)


def read_run(run_dir: str | os.PathLike):
    """A run directory, checked: manifest, metrics (a DataFrame), per-example correctness, agreement,
    diagnostics (docs/results.md)."""
    from kdbench.results.checks import load_run

    return load_run(run_dir)


def runs(index: str | os.PathLike = "results/runs.sqlite", table: str = "runs"):
    """A table of the runs index (`kdbench index`, and every `kdbench run` into its --out) as a
    DataFrame: "runs" (one row per run: path, run_id, suite, dataset, times, versions, eval_spec_hash,
    manifest), or "metrics", "model_metrics", "summary", "diagnostics", "verdicts", each keyed by
    the run's path. For joins and filters, query the file with SQL (sqlite3, pandas.read_sql)."""
    from kdbench.index import read_table

    return read_table(Path(index), table)


def compare(run_a: str | os.PathLike, run_b: str | os.PathLike):
    """Metric by metric, run B against run A: a DataFrame with both accuracies (base_acc = A,
    run_acc = B), the difference, the test used and its two-sided p-value (none when the runs are not
    comparable), as `kdbench compare` prints it."""
    from kdbench.analysis.compare import compare_paths

    return compare_paths(run_a, run_b)[0]


def verdicts(run_dir: str | os.PathLike) -> list[str]:
    """The report's "at a glance" sentences: one per compare pair, distilled students first."""
    from kdbench.reports.verdicts import run_verdicts
    from kdbench.results.checks import load_run

    return [v.sentence() for v in run_verdicts(load_run(run_dir))]


def report(run_dir: str | os.PathLike, output: str | os.PathLike | None = None, fmt: str = "html") -> Path:
    """Write the HTML (or Markdown, fmt="md") report; returns the file's path
    (default: reports/<suite>-<run-id>.<fmt>)."""
    from kdbench.reports import write_report

    return write_report(run_dir, output, fmt)


def export(run_dir: str | os.PathLike, fmt: str, output: str | os.PathLike | None = None) -> list[Path]:
    """Write the run as fmt = "latex", "csv", "json" or "robustbench" (a directory of model-info
    files); returns the files written (default place: reports/<suite>-<run-id>.<ext>)."""
    from kdbench.exports import export as write_export

    return write_export(run_dir, fmt, output)


def gate(
    run_dir: str | os.PathLike,
    baseline: str | os.PathLike,
    tolerance: list[str] | None = None,
    alpha: float | None = None,
    strict: bool = False,
):
    """The regression gate's result (`.exit_code`, `.markdown`, `.table`), as `kdbench gate` decides it;
    runs that cannot be compared raise `kdbench.analysis.gate.NotComparable`."""
    from kdbench.analysis.gate import gate_paths

    return gate_paths(run_dir, baseline, tolerance, alpha, strict)
