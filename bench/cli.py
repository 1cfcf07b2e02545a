"""Command line only: parse, call, print, exit codes.

Exit codes: 0 success; 1 a failure the command reports (a gate regression); 2 bad input
(suite, flags, files); 3 runs that cannot be compared (gate); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_NOT_COMPARABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(Exception):
    """A user-facing error: printed without a traceback, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_BAD_INPUT):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------- core: run, validate, schema, list
def add_core_commands(sub) -> None:
    p = sub.add_parser("run", help="train what is missing, evaluate every model, write a run directory")
    p.add_argument("suite", help="suite YAML file")
    p.add_argument("--data-root", help="dataset root (else $KDBENCH_DATA_ROOT, else the user cache)")
    p.add_argument("--out", default="results", help="results directory (default: results)")
    p.add_argument("--cache-dir", help="job cache (default: OUT/_cache)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a suite value (YAML syntax), e.g. train.epochs=2")
    p.add_argument("--dry-run", action="store_true", help="print the job plan and what is cached, run nothing")
    p.add_argument("--force", action="store_true", help="redo every job even when its output exists")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a suite file without running it")
    p.add_argument("suite", nargs="+")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the suite JSON Schema (point your editor at it)")
    p.add_argument("-o", "--output", help="write to a file instead of stdout")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("list", help="list architectures, methods, conditions and datasets")
    p.set_defaults(func=cmd_list)


def _load(path, overrides):
    from .suite import SuiteError, load_suite

    try:
        suite = load_suite(path, overrides)
    except SuiteError as exc:
        raise CliError(f"invalid suite\n{exc}") from None
    for warning in suite.twin_warnings():
        print(f"kdbench: warning: {path}: {warning}", file=sys.stderr)
    return suite


def cmd_validate(args) -> int:
    for path in args.suite:
        suite = _load(path, args.overrides)
        n_models = len(suite.teachers) + sum(len(s.seeds) for s in suite.students.values())
        print(f"{path}: ok ({len(suite.teachers)} teacher(s), {len(suite.students)} student(s), {n_models} models, {len(suite.pairs())} comparison(s))")
    return EXIT_OK


def cmd_schema(args) -> int:
    import json

    from .suite import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        from .atomic import write_text

        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_list(args) -> int:
    from .conditions import CONDITIONS
    from .data import DATASETS
    from .methods import METHODS
    from .models import MODELS

    for title, reg in (("architectures", MODELS), ("methods", METHODS), ("conditions", CONDITIONS), ("datasets", DATASETS)):
        print(f"{title}:")
        for name, obj in reg.items():
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            print(f"  {name:<18} {doc[0] if doc else ''}".rstrip())
    return EXIT_OK


def cmd_run(args) -> int:
    from .data import DataError
    from .models.checkpoint import CheckpointError
    from .runner import run_suite
    from .teachers import TeacherError

    suite = _load(args.suite, args.overrides)
    try:
        run_dir = run_suite(suite, data_root=args.data_root, out=args.out, cache_dir=args.cache_dir, device=args.device,
                            force=args.force, dry_run=args.dry_run, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (DataError, CheckpointError, TeacherError) as exc:
        raise CliError(f"{args.suite}: {exc}") from None
    except RuntimeError as exc:
        if "--device" in str(exc):
            raise CliError(str(exc)) from None
        raise
    if run_dir is not None:
        _print_summary(run_dir)
        print(run_dir)
    return EXIT_OK


def _print_summary(run_dir) -> None:
    from .results import read_run

    run = read_run(run_dir)
    m = run.metrics
    table = m.groupby(["model", "role", "condition", "level"], sort=False)["accuracy"].agg(["mean", "std", "count"]).reset_index()
    print(f"{'model':<24} {'role':<10} {'condition':<16} {'level':>9} {'accuracy':>9} {'sd':>7} seeds", file=sys.stderr)
    for r in table.itertuples():
        sd = "" if r.count < 2 else f"{r.std:.4f}"
        print(f"{r.model:<24} {r.role:<10} {r.condition:<16} {r.level:>9} {r.mean:>9.4f} {sd:>7} {r.count}", file=sys.stderr)
    for r in run.agreement.itertuples():
        print(f"agreement {r.model} seed {r.seed} with {r.teachers}: {r.agreement:.4f}", file=sys.stderr)


# ---------------------------------------------------------------- issue 3: corruptions export / preview
def add_corruption_commands(sub) -> None:
    pass  # owned by the corruptions work


# ---------------------------------------------------------------- issue 4: report, compare, baseline, gate
def add_report_commands(sub) -> None:
    # Imports stay inside the handlers: `kdbench run` should not pay for matplotlib and Jinja2.
    def bad_input(exc) -> CliError:
        return CliError(str(exc), EXIT_BAD_INPUT)

    def report(args) -> int:
        from .report import write_report, render
        from .results import ResultsError

        try:
            if args.output == "-":
                sys.stdout.write(render(args.run_dir, args.format))
                return EXIT_OK
            out = write_report(args.run_dir, args.output, args.format)
        except ResultsError as exc:
            raise bad_input(exc) from None
        print(out)
        return EXIT_OK

    def compare(args) -> int:
        from .gate import compare_markdown
        from .results import ResultsError

        try:
            sys.stdout.write(compare_markdown(args.run_a, args.run_b))
        except ResultsError as exc:
            raise bad_input(exc) from None
        return EXIT_OK

    def baseline(args) -> int:
        from .baseline import bless
        from .results import ResultsError

        try:
            out, size = bless(args.run_dir, args.output)
        except ResultsError as exc:
            raise bad_input(exc) from None
        print(f"blessed {args.run_dir} as the baseline {out} ({size / 1024:.1f} KiB)")
        return EXIT_OK

    def gate(args) -> int:
        from . import gate as g
        from .results import ResultsError

        try:
            result = g.gate_paths(args.run_dir, args.baseline, args.tolerance, args.alpha)
        except (ResultsError, g.GateUsageError) as exc:
            raise bad_input(exc) from None
        except g.NotComparable as exc:
            g.append_step_summary(g.not_comparable_markdown(exc.problems))
            raise CliError(str(exc), EXIT_NOT_COMPARABLE) from None
        sys.stdout.write(result.markdown)
        g.append_step_summary(result.markdown)
        return result.exit_code

    p = sub.add_parser("report", help="a run directory as one self-contained HTML page (or Markdown)")
    p.add_argument("run_dir", help="run directory (results/<suite>/<run-id>)")
    p.add_argument("-o", "--output", help="output file, '-' for stdout (default: reports/<suite>-<run-id>.<format>)")
    p.add_argument("--format", choices=("html", "md"), default="html", help="html (default) or md")
    p.set_defaults(func=report)

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
    p.add_argument("--tolerance", action="append", metavar="PP|KEY=PP",
                   help="allowed fall in percentage points: a default (PP) or for a group, condition or condition:level "
                        "(attack=2, pgd=3, pgd:8/255=5); repeatable; default 1, or the suite's gate section")  # fmt: skip
    p.add_argument("--alpha", type=float, help="significance level after Holm's correction (default 0.05)")
    p.set_defaults(func=gate)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="kdbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kdbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_core_commands(sub)
    add_corruption_commands(sub)
    add_report_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad flags already; keep its code
        return int(exc.code or 0)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"kdbench: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("kdbench: interrupted; finished jobs are kept and the next run resumes from them", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
