"""`kdbench index`, `leaderboard`, `report`, `export`, `compare`, `baseline` and `gate`: commands that
read run directories.
Imports stay inside the handlers: `kdbench run` should not pay for matplotlib and Jinja2."""

from __future__ import annotations

import sys
from pathlib import Path

from kdbench.cli.errors import CliError
from kdbench.util.exit_codes import ExitCode


def add_commands(sub) -> None:
    def bad_input(exc) -> CliError:
        return CliError(str(exc), ExitCode.BAD_INPUT)

    def report(args) -> int:

        from kdbench.reports import render, write_report
        from kdbench.results.contract import ResultsError

        if args.output not in (None, "-") and Path(args.output).is_dir():
            raise CliError(
                f"-o {args.output}: is a directory, expected the report file to write (e.g. "
                f"{Path(args.output) / 'report.html'})"
            )
        try:
            if args.output == "-":
                sys.stdout.write(render(args.run_dir, args.format))
                return ExitCode.OK
            out = write_report(args.run_dir, args.output, args.format)
        except ResultsError as exc:
            raise bad_input(exc) from None
        print(out)
        return ExitCode.OK

    def compare(args) -> int:
        from kdbench.analysis.compare import compare_markdown
        from kdbench.results.contract import ResultsError

        try:
            sys.stdout.write(compare_markdown(args.run_a, args.run_b))
        except ResultsError as exc:
            raise bad_input(exc) from None
        return ExitCode.OK

    def baseline(args) -> int:
        from kdbench.analysis.bless import bless
        from kdbench.results.contract import ResultsError

        try:
            out, size = bless(args.run_dir, args.output)
        except ResultsError as exc:
            raise bad_input(exc) from None
        print(f"blessed {args.run_dir} as the baseline {out} ({size / 1024:.1f} KiB)")
        return ExitCode.OK

    def gate(args) -> int:
        from kdbench.analysis import gate as g
        from kdbench.analysis.compare import not_comparable_markdown
        from kdbench.analysis.gate_summary import append_step_summary
        from kdbench.results.contract import ResultsError

        try:
            result = g.gate_paths(args.run_dir, args.baseline, args.tolerance, args.alpha, args.strict, args.identical)
        except (ResultsError, g.GateUsageError) as exc:
            raise bad_input(exc) from None
        except g.NotComparable as exc:
            append_step_summary(not_comparable_markdown(exc.problems))
            raise CliError(str(exc), ExitCode.NOT_COMPARABLE) from None
        sys.stdout.write(result.markdown)
        append_step_summary(result.markdown)
        return result.exit_code

    def export(args) -> int:

        from kdbench.exports import EXTENSIONS, default_output
        from kdbench.exports import export as run_export
        from kdbench.results.contract import ResultsError

        out = Path(args.output) if args.output else default_output(args.run_dir, args.format)
        if EXTENSIONS[args.format] is None and out.exists() and not out.is_dir():
            raise CliError(
                f"-o {args.output}: is a file; --format {args.format} writes a directory of files", ExitCode.BAD_INPUT
            )
        if EXTENSIONS[args.format] is not None and out.is_dir():
            raise CliError(
                f"-o {args.output}: is a directory, expected the file to write (e.g. "
                f"{out / ('table.' + EXTENSIONS[args.format])})",
                ExitCode.BAD_INPUT,
            )
        try:
            written = run_export(args.run_dir, args.format, out)
        except ResultsError as exc:
            raise bad_input(exc) from None
        if not written:
            print(
                f"nothing to export as {args.format}: no network of this run has what it needs (see docs/results.md, "
                "'Exports')",
                file=sys.stderr,
            )
        for path in written:
            print(path)
        return ExitCode.OK

    def index(args) -> int:
        from kdbench.index import default_db, index_runs

        db = Path(args.db) if args.db else default_db(args.dirs)
        if db.is_dir():
            raise CliError(f"--db {args.db}: is a directory, expected the index file (e.g. {db / 'runs.sqlite'})")
        done = index_runs(db, args.dirs, log=lambda line: print(line, file=sys.stderr))
        counts = ", ".join(f"{len(v)} {k}" for k, v in done.items())
        print(f"{db}: {counts}")
        return ExitCode.OK

    p = sub.add_parser(
        "index", help="record run directories in a SQLite runs index (kdbench run does it into its --out)"
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="run directories, or folders holding them (e.g. results)")
    p.add_argument("--db", help="the index file (default: DIR/runs.sqlite, beside the results)")
    p.set_defaults(func=index)

    def leaderboard(args) -> int:
        from kdbench.index.leaderboard import write_leaderboard

        out = Path(args.output or f"reports/leaderboard.{args.format}")
        if out.is_dir():
            raise CliError(
                f"-o {args.output}: is a directory, expected the page to write (e.g. {out / 'leaderboard.html'})"
            )
        missing = [d for d in args.dirs if not Path(d).exists()]
        if missing:
            raise CliError(f"{missing[0]}: no such folder (a results folder, a run folder or a runs index file)")
        print(write_leaderboard(args.dirs, out, args.format, log=lambda line: print(line, file=sys.stderr)))
        return ExitCode.OK

    p = sub.add_parser("leaderboard", help="every network of the indexed runs on one page, sortable and filterable")
    p.add_argument(
        "dirs", nargs="*", default=["results"], metavar="DIR", help="results folders or index files (default: results)"
    )
    p.add_argument("-o", "--output", help="the page (default: reports/leaderboard.html or .md)")
    p.add_argument("--format", choices=("html", "md"), default="html")
    p.set_defaults(func=leaderboard)

    p = sub.add_parser("report", help="a run directory as one self-contained HTML page (or Markdown)")
    p.add_argument("run_dir", help="run directory (results/<suite>/<run-id>)")
    p.add_argument("-o", "--output", help="output file, '-' for stdout (default: reports/<suite>-<run-id>.<format>)")
    p.add_argument("--format", choices=("html", "md"), default="html", help="html (default) or md")
    p.set_defaults(func=report)

    p = sub.add_parser(
        "export",
        help="a run's headline table for papers (LaTeX, CSV), the whole report as JSON, or RobustBench model-info "
        "files",
    )
    p.add_argument("run_dir", help="run directory (results/<suite>/<run-id>)")
    p.add_argument(
        "--format",
        choices=("latex", "csv", "json", "robustbench"),
        required=True,
        help="latex: booktabs table; csv: the same, tidy; json: everything the report shows; robustbench: one "
        "model-info JSON per network",
    )
    p.add_argument(
        "-o", "--output", help="output file (a directory for robustbench; default: reports/<suite>-<run-id>.<ext>)"
    )
    p.set_defaults(func=export)

    p = sub.add_parser("compare", help="metric-by-metric differences of two runs (B - A), with paired tests")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.set_defaults(func=compare)

    p = sub.add_parser("baseline", help="bless a run as the regression gate's baseline")
    p.add_argument("run_dir")
    p.add_argument("-o", "--output", required=True, help="baseline directory, e.g. results/baselines/NAME")
    p.set_defaults(func=baseline)

    p = sub.add_parser("gate", help="fail (exit 1) when a run regresses against the baseline; 3 when not comparable")
    p.add_argument("run_dir")
    p.add_argument("--baseline", required=True, help="a blessed baseline (kdbench baseline) or any run directory")
    p.add_argument(
        "--tolerance",
        action="append",
        metavar="PP|KEY=PP",
        help="allowed fall in percentage points: a default (PP) or for a group, condition or condition:level "
        "(attack=2, pgd=3, pgd:8/255=5); repeatable; default 1, or the suite's gate section",
    )
    p.add_argument("--alpha", type=float, help="significance level after Holm's correction (default 0.05)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 4 when any metric is INCONCLUSIVE (its test could not detect a fall of its tolerance)",
    )
    p.add_argument(
        "--identical",
        action="store_true",
        help="expect the run's networks and per-example results to equal the baseline's bit for bit (both in "
        "portable mode, or the same machine): exit 1 naming each network or metric that differs",
    )
    p.set_defaults(func=gate)
