"""`kdbench run`: the flags, the call, and the verdicts printed at the end."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from kdbench.cli.errors import CliError
from kdbench.cli.suites import load_or_fail
from kdbench.tracking.session import BACKENDS
from kdbench.util.errors import UserError
from kdbench.util.exit_codes import ExitCode


def add_commands(sub) -> None:
    p = sub.add_parser("run", help="train what is missing, evaluate every model, write a run directory")
    p.add_argument("suite", help="suite YAML file")
    p.add_argument("--data-root", help="dataset root (else $KDBENCH_DATA_ROOT, else the user cache)")
    p.add_argument("--out", default="results", help="results directory (default: results)")
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the job store: trained models and evaluations, reused by every run that "
        "needs the same job (default: OUT/_cache)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a suite value (YAML syntax), e.g. train.epochs=2",
    )
    p.add_argument("--dry-run", action="store_true", help="print the job plan and what is cached, run nothing")
    p.add_argument("--force", action="store_true", help="redo every job even when its output exists")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for torch, per job (default: torch's choice, all cores, shared among --jobs); on a shared "
        "machine 1 is often faster. CPU results depend on it, and the job store records it",
    )
    p.add_argument(
        "--portable",
        action="store_true",
        help="the same bytes from every CPU job on any x86-64 CPU (the suite's reproducible: portable): ATen's "
        "baseline kernels, no oneDNN, MKL's compatible path, one thread per job; slower. Enters the job hashes",
    )
    p.add_argument(
        "--nondeterministic",
        action="store_true",
        help="GPU: let cuDNN time and pick its fastest kernels (cudnn.benchmark); faster, but numbers then vary "
        "slightly from run to run",
    )
    p.add_argument(
        "--track",
        action="append",
        default=[],
        choices=tuple(BACKENDS),
        metavar="BACKEND",
        help="log every model's parameters, per-epoch and final metrics and the report to mlflow (OUT/mlruns, or "
        "$MLFLOW_TRACKING_URI), tensorboard (OUT/tensorboard) or wandb (OUT/wandb, offline unless $WANDB_MODE); "
        "repeatable; each is an extra: pip install 'kdbench[mlflow]'. Never changes a job's hash or its numbers",
    )
    p.add_argument(
        "--verbose", action="store_true", help="end with every metric's mean accuracy, not only the verdicts"
    )
    g = p.add_argument_group("executor", "where the jobs run; none of it changes a job's hash or its results")
    g.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: this process (default); ray: a Ray cluster",
    )
    g.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="local: up to N ready jobs at once, each in its own worker process, sharing the GPU or "
        "splitting the CPU threads (--threads per job); the numbers are those of --jobs 1 at the same threads "
        "(default 1; the evaluations are then split into N groups, --eval-group)",
    )
    g.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="auto or HOST:PORT of a running cluster (default: start one on this machine; $KDBENCH_RAY_ADDRESS)",
    )
    g.add_argument(
        "--cpus-per-job",
        metavar="N",
        help="CPUs a task reserves, and its torch threads: a number for every job kind, "
        "or per kind as in 1,evaluate=2 (kinds: teacher, student, evaluate; default 1; $KDBENCH_RAY_CPUS_PER_JOB)",
    )
    g.add_argument(
        "--gpus-per-job",
        metavar="F",
        help="GPUs a task reserves, fractions allowed: 0.25 runs four per GPU; per kind as in "
        "0.25,teacher=1 (default 0; $KDBENCH_RAY_GPUS_PER_JOB)",
    )
    g.add_argument(
        "--eval-group",
        type=int,
        metavar="N",
        help="evaluation jobs scored together, on either executor: a perturbed batch is "
        "made once per group, and only a group's models are held at once (default 8; $KDBENCH_RAY_EVAL_GROUP on Ray)",
    )
    g.add_argument(
        "--max-retries",
        type=int,
        metavar="N",
        help="reruns of a task whose worker died (default 3; $KDBENCH_RAY_MAX_RETRIES)",
    )
    p.set_defaults(func=cmd_run)


def cmd_run(args) -> int:
    from kdbench.api import run_with
    from kdbench.executors.ray_config import RayOptions
    from kdbench.pipeline.options import RunOptions

    _check_device(args.device)
    for flag, value in (("--out", args.out), ("--cache-dir", args.cache_dir)):
        _check_directory(flag, value)
    suite = load_or_fail(args.suite, args.overrides)
    if args.portable:
        suite = suite.model_copy(update={"reproducible": "portable"})
    if suite.reproducible == "portable":
        _portable_process(args)
    if args.jobs > 1 and args.executor == "ray":
        raise CliError("--jobs: only with --executor local; on Ray, --cpus-per-job and --gpus-per-job pack the jobs")
    ray_flags = {
        "address": args.ray_address,
        "cpus_per_job": args.cpus_per_job,
        "gpus_per_job": args.gpus_per_job,
        "eval_group": args.eval_group,
        "max_retries": args.max_retries,
    }
    ray_options = None
    if args.executor == "ray":
        try:
            ray_options = RayOptions.from_env(**ray_flags)
        except UserError as exc:
            raise CliError(str(exc)) from None
    else:
        given = [
            f"--{k.replace('_', '-')}" if k != "address" else "--ray-address"
            for k, v in ray_flags.items()
            if v is not None and k != "eval_group"
        ]
        if given:
            raise CliError(f"{', '.join(given)}: only with --executor ray")
    try:
        options = RunOptions.of(
            data_root=args.data_root,
            out=args.out,
            cache_dir=args.cache_dir,
            device=args.device,
            force=args.force,
            dry_run=args.dry_run,
            deterministic=not args.nondeterministic,
            executor=args.executor,
            ray_options=ray_options,
            eval_group=args.eval_group,
            jobs=args.jobs,
            threads=args.threads,
            track=tuple(args.track),
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
    except UserError as exc:
        raise CliError(_as_flags(str(exc))) from None
    try:
        run_dir = run_with(suite, options)
    except UserError as exc:  # bad data, checkpoints, Ray unreachable or a path the nodes do not share
        raise CliError(f"{args.suite}: {exc}", exc.exit_code) from None
    if run_dir is not None:
        _print_summary(run_dir, args.verbose)
        print(run_dir)
    return ExitCode.OK


def _as_flags(message: str) -> str:
    """The options' names as the command line writes them: jobs=0 -> --jobs 0."""
    import re

    return re.sub(r"\b(eval_group|jobs|threads)=(\S+?):", lambda m: f"--{m[1].replace('_', '-')} {m[2]}:", message)


def _portable_process(args) -> None:
    """Portable mode's environment must precede torch's import: set it and start again, once."""
    from kdbench.util import portable

    if args.threads not in (None, portable.THREADS):
        raise CliError(f"--threads {args.threads}: portable mode runs every job at {portable.THREADS} thread")
    if args.may_reexec and not portable.environment_ready() and not os.environ.get("KDBENCH_PORTABLE_REEXEC"):
        portable.reexec_pinned(args.argv)
    try:
        portable.check_ready()
    except UserError as exc:
        raise CliError(str(exc)) from None


def _check_device(device: str) -> None:

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device or ""):
        raise CliError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def _check_directory(flag: str, value) -> None:
    """An output directory flag must not name an existing file (we would fail after hours of work)."""

    if value is not None and Path(value).exists() and not Path(value).is_dir():
        raise CliError(f"{flag} {value}: is a file, expected a directory")


def _print_summary(run_dir, verbose: bool = False) -> None:
    """The end of `kdbench run`: the report's verdict sentences and how to see the rest."""
    from kdbench.reports.verdicts import run_verdicts
    from kdbench.results.read import read_run

    run = read_run(run_dir)
    if verbose:
        m = run.metrics
        table = (
            m.groupby(["model", "role", "condition", "level"], sort=False)["accuracy"]
            .agg(["mean", "std", "count"])
            .reset_index()
        )
        print(
            f"{'model':<24} {'role':<10} {'condition':<16} {'level':>9} {'accuracy':>9} {'sd':>7} seeds",
            file=sys.stderr,
        )
        for r in table.itertuples():
            sd = "" if r.count < 2 else f"{r.std:.4f}"
            print(
                f"{r.model:<24} {r.role:<10} {r.condition:<16} {r.level:>9} {r.mean:>9.4f} {sd:>7} {r.count}",
                file=sys.stderr,
            )
        for r in run.agreement.itertuples():
            print(f"agreement {r.model} seed {r.seed} with {r.teachers}: {r.agreement:.4f}", file=sys.stderr)
        for model, seconds in (run.manifest.get("attack_seconds") or {}).items():
            print(f"attack time {model}: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()), file=sys.stderr)
    for v in run_verdicts(run):
        print(("" if v.kind == "distilled" else "control: ") + v.sentence(), file=sys.stderr)
    from kdbench.evaluation.diagnostics import flagged_summary

    flags = flagged_summary(run.diagnostics)
    if flags:
        print(
            f"WARNING: gradient masking suspected ({len(flags)} check(s) flagged; see diagnostics.csv and "
            "docs/attacks.md "
            "'Gradient-masking checks'); do not read these models' robust accuracy as robustness:",
            file=sys.stderr,
        )
        for line in flags:
            print(f"  {line}", file=sys.stderr)
    elif run.diagnostics is not None:
        print(
            f"gradient-masking checks: none flagged ({len(run.diagnostics)} rows in diagnostics.csv)", file=sys.stderr
        )
    records = run.manifest.get("jobs") or []
    reused = sum(1 for r in records if r.get("cached"))
    if isinstance(run.manifest.get("wall_s"), (int, float)):
        from kdbench.util.progress import elapsed

        print(
            f"wall time {elapsed(run.manifest['wall_s'])}: {len(records) - reused} job(s) run"
            + (f", {reused} reused from the job store" if reused else ""),
            file=sys.stderr,
        )
    print(
        f"the report: kdbench report {run_dir}" + ("" if verbose else "   (every metric: kdbench run ... --verbose)"),
        file=sys.stderr,
    )
