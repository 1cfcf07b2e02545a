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
    pass  # filled in by the core


# ---------------------------------------------------------------- issue 3: corruptions export / preview
def add_corruption_commands(sub) -> None:
    pass  # owned by the corruptions work


# ---------------------------------------------------------------- issue 4: report, compare, baseline, gate
def add_report_commands(sub) -> None:
    pass  # owned by the report/gate work


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
