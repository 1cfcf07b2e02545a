"""`kdbench validate`, `schema` and `list`: about suites and what they can name; none imports torch."""

from __future__ import annotations

import sys

from kdbench.cli.errors import CliError
from kdbench.util.exit_codes import ExitCode


def add_commands(sub) -> None:
    p = sub.add_parser("validate", help="check a suite file without running it")
    p.add_argument("suite", nargs="+")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the suite JSON Schema (point your editor at it)")
    p.add_argument("-o", "--output", help="write to a file instead of stdout")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("list", help="list architectures, methods, conditions, datasets and model metrics")
    p.add_argument("suite", nargs="?", help="also the names this suite's plugins register")
    p.set_defaults(func=cmd_list)


def load_or_fail(path, overrides):
    from kdbench.config import SuiteError, load_suite

    try:
        suite = load_suite(path, overrides)
    except SuiteError as exc:
        raise CliError(f"invalid suite\n{exc}") from None
    for warning in suite.twin_warnings():
        print(f"kdbench: warning: {path}: {warning}", file=sys.stderr)
    return suite


def cmd_validate(args) -> int:
    for path in args.suite:
        suite = load_or_fail(path, args.overrides)
        n_models = len(suite.teachers) + sum(len(s.seeds) for s in suite.students.values())
        print(
            f"{path}: ok ({len(suite.teachers)} teacher(s), {len(suite.students)} student(s), {n_models} models, "
            f"{len(suite.pairs())} comparison(s))"
        )
    return ExitCode.OK


def cmd_schema(args) -> int:
    import json

    from kdbench.config import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        from kdbench.util.atomic import write_text

        write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return ExitCode.OK


def cmd_list(args) -> int:
    from kdbench.data import DATASETS
    from kdbench.evaluation.conditions import CONDITIONS
    from kdbench.evaluation.model_metrics import MODEL_METRICS
    from kdbench.models import MODELS
    from kdbench.registry import BUILT_IN
    from kdbench.training.methods import METHODS

    if args.suite:
        load_or_fail(args.suite, [])  # imports its plugins
    for title, reg in (
        ("architectures", MODELS),
        ("methods", METHODS),
        ("conditions", CONDITIONS),
        ("datasets", DATASETS),
        ("model metrics", MODEL_METRICS),
    ):
        print(f"{title}:")
        for name in reg.names():
            origin = reg.origin(name)
            print(f"  {name:<18} {reg.doc(name)}".rstrip() + ("" if origin == BUILT_IN else f"  [from {origin}]"))
    return ExitCode.OK
