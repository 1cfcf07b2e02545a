"""Command line only: parse, call, print, exit codes.

Exit codes: 0 success; 1 a failure the command reports (a gate regression); 2 bad input
(suite, flags, files); 3 runs that cannot be compared (gate); 4 inconclusive metrics under
`gate --strict`; 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_NOT_COMPARABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

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
    p.add_argument("--cache-dir", metavar="DIR", help="the job store: trained models and evaluations, reused by every run that "
                   "needs the same job (default: OUT/_cache)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE", help="override a suite value (YAML syntax), e.g. train.epochs=2")
    p.add_argument("--dry-run", action="store_true", help="print the job plan and what is cached, run nothing")
    p.add_argument("--force", action="store_true", help="redo every job even when its output exists")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's choice, all cores); on a shared machine 1 is often faster")
    p.add_argument("--nondeterministic", action="store_true",
                   help="GPU: let cuDNN time and pick its fastest kernels (cudnn.benchmark); faster, but numbers then vary slightly from run to run")
    p.add_argument("--verbose", action="store_true", help="end with every metric's mean accuracy, not only the verdicts")
    g = p.add_argument_group("executor", "where the jobs run; none of it changes a job's hash or its results")
    g.add_argument("--executor", choices=("local", "ray"), default="local", help="local: this process (default); ray: a Ray cluster")
    g.add_argument("--ray-address", metavar="ADDR", help="auto or HOST:PORT of a running cluster (default: start one on this machine; "
                   "$KDBENCH_RAY_ADDRESS)")
    g.add_argument("--cpus-per-job", metavar="N", help="CPUs a task reserves, and its torch threads: a number for every job kind, "
                   "or per kind as in 1,evaluate=2 (kinds: teacher, student, evaluate; default 1; $KDBENCH_RAY_CPUS_PER_JOB)")
    g.add_argument("--gpus-per-job", metavar="F", help="GPUs a task reserves, fractions allowed: 0.25 runs four per GPU; per kind as in "
                   "0.25,teacher=1 (default 0; $KDBENCH_RAY_GPUS_PER_JOB)")
    g.add_argument("--eval-group", type=int, metavar="N", help="evaluation jobs scored together, on either executor: a perturbed batch is "
                   "made once per group, and only a group's models are held at once (default 8; $KDBENCH_RAY_EVAL_GROUP on Ray)")
    g.add_argument("--max-retries", type=int, metavar="N", help="reruns of a task whose worker died (default 3; $KDBENCH_RAY_MAX_RETRIES)")
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
        for name in reg.names():
            print(f"  {name:<18} {reg.doc(name)}".rstrip())
    return EXIT_OK


def cmd_run(args) -> int:
    from .data import DataError
    from .models.checkpoint import CheckpointError
    from .ray_executor import RayError, RayOptions
    from .runner import run_suite
    from .teachers import TeacherError

    _check_device(args.device)
    for flag, value in (("--out", args.out), ("--cache-dir", args.cache_dir)):
        _check_directory(flag, value)
    suite = _load(args.suite, args.overrides)
    if args.threads is not None:
        if args.threads < 1:
            raise CliError(f"--threads {args.threads}: expected a whole number of threads, 1 or more")
        import torch

        torch.set_num_threads(args.threads)
    ray_flags = {"address": args.ray_address, "cpus_per_job": args.cpus_per_job, "gpus_per_job": args.gpus_per_job,
                 "eval_group": args.eval_group, "max_retries": args.max_retries}  # fmt: skip
    if args.eval_group is not None and args.eval_group < 1:  # either executor's
        raise CliError(f"--eval-group {args.eval_group}: expected a whole number of jobs, 1 or more")
    ray_options = None
    if args.executor == "ray":
        try:
            ray_options = RayOptions.from_env(**ray_flags)
        except RayError as exc:
            raise CliError(str(exc)) from None
    else:
        given = [f"--{k.replace('_', '-')}" if k != "address" else "--ray-address" for k, v in ray_flags.items() if v is not None and k != "eval_group"]
        if given:
            raise CliError(f"{', '.join(given)}: only with --executor ray")
    try:
        run_dir = run_suite(suite, data_root=args.data_root, out=args.out, cache_dir=args.cache_dir, device=args.device,
                            force=args.force, dry_run=args.dry_run, deterministic=not args.nondeterministic,
                            executor=args.executor, ray_options=ray_options, eval_group=args.eval_group, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (DataError, CheckpointError, TeacherError) as exc:
        raise CliError(f"{args.suite}: {exc}") from None
    except RayError as exc:  # Ray missing or unreachable, a path the nodes do not share
        raise CliError(f"{args.suite}: {exc}") from None
    except RuntimeError as exc:
        if "--device" in str(exc):
            raise CliError(str(exc)) from None
        raise
    if run_dir is not None:
        _print_summary(run_dir, args.verbose)
        print(run_dir)
    return EXIT_OK


def _check_device(device: str) -> None:
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device or ""):
        raise CliError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def _check_directory(flag: str, value) -> None:
    """An output directory flag must not name an existing file (we would fail after hours of work)."""
    from pathlib import Path

    if value is not None and Path(value).exists() and not Path(value).is_dir():
        raise CliError(f"{flag} {value}: is a file, expected a directory")


def _print_summary(run_dir, verbose: bool = False) -> None:
    """The end of `kdbench run`: the report's verdict sentences and how to see the rest."""
    from .report.tables import build
    from .report.verdicts import pair_verdicts
    from .results import read_run

    run = read_run(run_dir)
    if verbose:
        m = run.metrics
        table = m.groupby(["model", "role", "condition", "level"], sort=False)["accuracy"].agg(["mean", "std", "count"]).reset_index()
        print(f"{'model':<24} {'role':<10} {'condition':<16} {'level':>9} {'accuracy':>9} {'sd':>7} seeds", file=sys.stderr)
        for r in table.itertuples():
            sd = "" if r.count < 2 else f"{r.std:.4f}"
            print(f"{r.model:<24} {r.role:<10} {r.condition:<16} {r.level:>9} {r.mean:>9.4f} {sd:>7} {r.count}", file=sys.stderr)
        for r in run.agreement.itertuples():
            print(f"agreement {r.model} seed {r.seed} with {r.teachers}: {r.agreement:.4f}", file=sys.stderr)
        for model, seconds in (run.manifest.get("attack_seconds") or {}).items():
            print(f"attack time {model}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()), file=sys.stderr)
    for v in pair_verdicts(build(run)):
        print(("" if v.kind == "distilled" else "control: ") + v.sentence(), file=sys.stderr)
    from .diagnostics import flagged_summary

    flags = flagged_summary(run.diagnostics)
    if flags:
        print(f"WARNING: gradient masking suspected ({len(flags)} check(s) flagged; see diagnostics.csv and README "
              "'Gradient-masking checks'); do not read these models' robust accuracy as robustness:", file=sys.stderr)
        for line in flags:
            print(f"  {line}", file=sys.stderr)
    elif run.diagnostics is not None:
        print(f"gradient-masking checks: none flagged ({len(run.diagnostics)} rows in diagnostics.csv)", file=sys.stderr)
    print(f"the report: kdbench report {run_dir}" + ("" if verbose else "   (every metric: kdbench run ... --verbose)"), file=sys.stderr)


# ---------------------------------------------------------------- issue 3: corruptions export / preview
def add_corruption_commands(sub) -> None:
    """`kdbench corruptions list | export | preview`; the work is in bench.corruption_export."""
    p = sub.add_parser("corruptions", help="CIFAR-10-C corruptions: list them, export a data set, preview a grid")
    csub = p.add_subparsers(dest="corruptions_command", required=True, metavar="ACTION")

    def data_args(q):
        q.add_argument("--data-root", help="dataset root (else $KDBENCH_DATA_ROOT, else the user cache)")
        q.add_argument("--dataset", default="cifar10", help="dataset name (default: cifar10)")
        q.add_argument("--split", default="test", choices=("train", "test"), help="split to corrupt (default: test)")
        q.add_argument("--names", nargs="+", default=None, metavar="NAME",
                       help="corruptions, or 'all' (the 19) or 'benchmark' (the 15)")
        q.add_argument("--severities", nargs="+", type=int, default=None, metavar="S", help="among 1..5 (default: all five)")
        q.add_argument("--seed", type=int, default=0, help="corruption seed (default: 0)")
        q.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")

    def names_of(args, default):
        from .conditions.corruptions import resolve_names

        raw = args.names or [default]
        try:
            return resolve_names(raw[0] if len(raw) == 1 and raw[0] in ("all", "benchmark") else raw)
        except KeyError as exc:
            raise CliError(str(exc)) from None

    def load(args):
        from .data import DataError, load_split

        try:
            return load_split(args.dataset, args.data_root, args.split)
        except (DataError, KeyError) as exc:
            raise CliError(str(exc)) from None

    def cmd_list(args) -> int:
        from .conditions.corruptions import ALL, BENCHMARK, CORRUPTIONS

        for name in ALL:
            c = CORRUPTIONS.get(name)
            tag = "" if name in BENCHMARK else "  (extra)"
            print(f"{name:<18} {c.family:<8} {c.doc.splitlines()[0] if c.doc else ''}{tag}")
        return EXIT_OK

    def cmd_export(args) -> int:
        from .corruption_export import export

        names = names_of(args, "all")
        data, _, identity = load(args)
        try:
            manifest = export(data.images, data.labels, data.indices, args.out, names=names, severities=args.severities,
                              seed=args.seed, batch_size=args.batch_size, device=args.device, identity=identity, workers=args.workers,
                              progress=lambda what, i, n: print(f"[{i}/{n}] {what}", file=sys.stderr, flush=True))
        except ValueError as exc:
            raise CliError(str(exc)) from None
        print(f"wrote {len(manifest['names'])} corruption file(s) and labels.npy for {manifest['n']} images to {args.out}")
        return EXIT_OK

    def cmd_preview(args) -> int:
        import torch

        from .corruption_export import preview_grid, save_png

        names = names_of(args, "all")
        data, _, _ = load(args)
        bad = [i for i in args.images if not 0 <= i < len(data)]
        if bad:
            raise CliError(f"--images: {bad} outside 0..{len(data) - 1}")
        pos = torch.tensor(args.images)
        try:
            grid = preview_grid(data.images[pos], data.indices[pos], names=names, severities=args.severities,
                                seed=args.seed, scale=args.scale, device=args.device)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        print(save_png(grid, args.out))
        return EXIT_OK

    q = csub.add_parser("list", help="the 19 corruptions (15 benchmark, 4 extra)")
    q.set_defaults(func=cmd_list)

    q = csub.add_parser("export", help="write <out>/<name>.npy (5N, 32, 32, 3) uint8 + labels.npy, the released layout")
    data_args(q)
    q.add_argument("--out", required=True, help="output directory")
    q.add_argument("--batch-size", type=int, default=1000, help="images per batch (default: 1000)")
    q.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="corruptions made at once, one process each, on the CPU (default: the CPU count); the bytes do not depend on it")
    q.set_defaults(func=cmd_export)

    q = csub.add_parser("preview", help="write a PNG grid: corruptions down, severities across, for a few images")
    data_args(q)
    q.add_argument("--out", required=True, help="PNG file to write")
    q.add_argument("--images", nargs="+", type=int, default=[0, 1, 2], metavar="I", help="positions in the split (default: 0 1 2)")
    q.add_argument("--scale", type=int, default=2, choices=range(1, 9), metavar="K", help="pixel scale 1..8 (default: 2)")
    q.set_defaults(func=cmd_preview)


# ---------------------------------------------------------------- issue 4: report, compare, baseline, gate
def add_report_commands(sub) -> None:
    # Imports stay inside the handlers: `kdbench run` should not pay for matplotlib and Jinja2.
    def bad_input(exc) -> CliError:
        return CliError(str(exc), EXIT_BAD_INPUT)

    def report(args) -> int:
        from .report import write_report, render
        from .results import ResultsError

        from pathlib import Path

        if args.output not in (None, "-") and Path(args.output).is_dir():
            raise CliError(f"-o {args.output}: is a directory, expected the report file to write (e.g. {Path(args.output) / 'report.html'})")
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
            result = g.gate_paths(args.run_dir, args.baseline, args.tolerance, args.alpha, args.strict)
        except (ResultsError, g.GateUsageError) as exc:
            raise bad_input(exc) from None
        except g.NotComparable as exc:
            g.append_step_summary(g.not_comparable_markdown(exc.problems))
            raise CliError(str(exc), EXIT_NOT_COMPARABLE) from None
        sys.stdout.write(result.markdown)
        g.append_step_summary(result.markdown)
        return result.exit_code

    def export(args) -> int:
        from pathlib import Path

        from .export import EXTENSIONS, default_output
        from .export import export as run_export
        from .results import ResultsError

        out = Path(args.output) if args.output else default_output(args.run_dir, args.format)
        if EXTENSIONS[args.format] is None and out.exists() and not out.is_dir():
            raise CliError(f"-o {args.output}: is a file; --format {args.format} writes a directory of files", EXIT_BAD_INPUT)
        if EXTENSIONS[args.format] is not None and out.is_dir():
            raise CliError(f"-o {args.output}: is a directory, expected the file to write (e.g. {out / ('table.' + EXTENSIONS[args.format])})", EXIT_BAD_INPUT)
        try:
            written = run_export(args.run_dir, args.format, out)
        except ResultsError as exc:
            raise bad_input(exc) from None
        if not written:
            print(f"nothing to export as {args.format}: no network of this run has what it needs (see README 'Exports')", file=sys.stderr)
        for path in written:
            print(path)
        return EXIT_OK

    p = sub.add_parser("report", help="a run directory as one self-contained HTML page (or Markdown)")
    p.add_argument("run_dir", help="run directory (results/<suite>/<run-id>)")
    p.add_argument("-o", "--output", help="output file, '-' for stdout (default: reports/<suite>-<run-id>.<format>)")
    p.add_argument("--format", choices=("html", "md"), default="html", help="html (default) or md")
    p.set_defaults(func=report)

    p = sub.add_parser("export", help="a run's headline table for papers (LaTeX, CSV), the whole report as JSON, or RobustBench model-info files")
    p.add_argument("run_dir", help="run directory (results/<suite>/<run-id>)")
    p.add_argument("--format", choices=("latex", "csv", "json", "robustbench"), required=True,
                   help="latex: booktabs table; csv: the same, tidy; json: everything the report shows; robustbench: one model-info JSON per network")
    p.add_argument("-o", "--output", help="output file (a directory for robustbench; default: reports/<suite>-<run-id>.<ext>)")
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
    p.add_argument("--tolerance", action="append", metavar="PP|KEY=PP",
                   help="allowed fall in percentage points: a default (PP) or for a group, condition or condition:level "
                        "(attack=2, pgd=3, pgd:8/255=5); repeatable; default 1, or the suite's gate section")  # fmt: skip
    p.add_argument("--alpha", type=float, help="significance level after Holm's correction (default 0.05)")
    p.add_argument("--strict", action="store_true", help="exit 4 when any metric is INCONCLUSIVE (its test could not detect a fall of its tolerance)")
    p.set_defaults(func=gate)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="kdbench", description=USER_HELP, epilog=USER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
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
