"""Command line only: parse, call, print, exit codes.

Exit codes: 0 success; 1 a failure the command reports (a gate regression); 2 bad input
(suite, flags, files); 3 runs that cannot be compared (gate); 4 inconclusive metrics under
`gate --strict`; 130 interrupted.
"""

from __future__ import annotations

import argparse
import functools
import sys

from kdbench.cli import corruptions, results, run, suites
from kdbench.util.errors import UserError
from kdbench.util.exit_codes import ExitCode
from kdbench.util.terminal import printable

USER_HELP = """Does knowledge distillation make a student more robust than its hard-label twin?
kdbench trains the students of a suite (YAML) next to their baseline twins, scores clean
accuracy, noise, corruptions and attacks, and tests distilled minus baseline."""
USER_EPILOG = """examples:
  kdbench validate suites/smoke.yaml
  kdbench run suites/smoke.yaml --data-root DIR --threads 1
  kdbench report results/smoke/latest
  kdbench export results/smoke/latest --format latex -o table.tex
  kdbench gate results/smoke/latest --baseline results/baselines/smoke

exit codes: 0 ok; 1 a gate regression; 2 bad input (suite, flags, files); 3 runs not comparable
(gate); 4 inconclusive metrics (gate --strict); 130 interrupted. `kdbench COMMAND -h` for a command."""


@functools.cache  # built once per process: a caller that runs many commands in one (the API, tests) pays once
def build_parser() -> argparse.ArgumentParser:
    from kdbench.version import __version__

    parser = argparse.ArgumentParser(
        prog="kdbench", description=USER_HELP, epilog=USER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"kdbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for commands in (run, suites, corruptions, results):
        commands.add_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad flags already; keep its code
        return int(exc.code or 0)
    # a command that must set the environment before torch is imported (run --portable) starts
    # itself again with it: only as a program of its own, never inside a caller's process
    args.argv, args.may_reexec = (sys.argv[1:], True) if argv is None else (list(argv), False)
    try:
        from kdbench.config.plugins import load_entry_points

        load_entry_points()  # installed packages' plugins, for every command
        return int(args.func(args) or 0)
    except UserError as exc:  # CliError among them
        print(f"kdbench: error: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kdbench: interrupted; finished jobs are kept and the next run resumes from them", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
