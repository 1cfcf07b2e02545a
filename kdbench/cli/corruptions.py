"""`kdbench corruptions list | export | preview`; the work is in kdbench.evaluation.corruption_export."""

from __future__ import annotations

import os
import sys

from kdbench.cli.errors import CliError
from kdbench.util.exit_codes import ExitCode


def add_commands(sub) -> None:
    """`kdbench corruptions list | export | preview`; the work is in kdbench.evaluation.corruption_export."""
    p = sub.add_parser("corruptions", help="the corruptions: list them, export a data set, preview a grid")
    csub = p.add_subparsers(dest="corruptions_command", required=True, metavar="ACTION")

    def data_args(q):
        q.add_argument("--data-root", help="dataset root (else $KDBENCH_DATA_ROOT, else the user cache)")
        q.add_argument("--dataset", default="cifar10", help="dataset name (default: cifar10)")
        q.add_argument("--split", default="test", choices=("train", "test"), help="split to corrupt (default: test)")
        q.add_argument(
            "--names",
            nargs="+",
            default=None,
            metavar="NAME",
            help="corruptions, or 'all' (the 19) or 'benchmark' (the 15)",
        )
        q.add_argument(
            "--severities", nargs="+", type=int, default=None, metavar="S", help="among 1..5 (default: all five)"
        )
        q.add_argument("--seed", type=int, default=0, help="corruption seed (default: 0)")
        q.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")

    def names_of(args, default):
        from kdbench.evaluation.conditions.corruptions import resolve_names

        raw = args.names or [default]
        try:
            return resolve_names(raw[0] if len(raw) == 1 and raw[0] in ("all", "benchmark") else raw)
        except KeyError as exc:
            raise CliError(str(exc)) from None

    def load(args):
        from kdbench.data import DataError, load_split

        try:
            return load_split(args.dataset, args.data_root, args.split)
        except (DataError, KeyError) as exc:
            raise CliError(str(exc)) from None

    def list_corruptions(args) -> int:
        from kdbench.evaluation.conditions.corruptions import ALL, BENCHMARK, CORRUPTIONS

        for name in ALL:
            c = CORRUPTIONS.get(name)
            tag = "" if name in BENCHMARK else "  (extra)"
            print(f"{name:<18} {c.family:<8} {c.doc.splitlines()[0] if c.doc else ''}{tag}")
        return ExitCode.OK

    def cmd_export(args) -> int:
        from kdbench.evaluation.corruption_export import export

        names = names_of(args, "all")
        data, _, identity = load(args)
        try:
            manifest = export(
                data.images,
                data.labels,
                data.indices,
                args.out,
                names=names,
                severities=args.severities,
                seed=args.seed,
                batch_size=args.batch_size,
                device=args.device,
                identity=identity,
                workers=args.workers,
                progress=lambda what, i, n: print(f"[{i}/{n}] {what}", file=sys.stderr, flush=True),
            )
        except ValueError as exc:
            raise CliError(str(exc)) from None
        print(
            f"wrote {len(manifest['names'])} corruption file(s) and labels.npy for {manifest['n']} images to {args.out}"
        )
        return ExitCode.OK

    def cmd_preview(args) -> int:
        import torch

        from kdbench.evaluation.corruption_export import preview_grid, save_png

        names = names_of(args, "all")
        data, _, _ = load(args)
        bad = [i for i in args.images if not 0 <= i < len(data)]
        if bad:
            raise CliError(f"--images: {bad} outside 0..{len(data) - 1}")
        pos = torch.tensor(args.images)
        try:
            grid = preview_grid(
                data.images[pos],
                data.indices[pos],
                names=names,
                severities=args.severities,
                seed=args.seed,
                scale=args.scale,
                device=args.device,
            )
        except ValueError as exc:
            raise CliError(str(exc)) from None
        print(save_png(grid, args.out))
        return ExitCode.OK

    q = csub.add_parser("list", help="the 19 corruptions (15 benchmark, 4 extra)")
    q.set_defaults(func=list_corruptions)

    q = csub.add_parser(
        "export", help="write <out>/<name>.npy (5N, S, S, 3) uint8 + labels.npy, CIFAR-10-C's released layout"
    )
    data_args(q)
    q.add_argument("--out", required=True, help="output directory")
    q.add_argument("--batch-size", type=int, default=1000, help="images per batch (default: 1000)")
    q.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="corruptions made at once, one process each, on the CPU (default: the CPU count); the bytes do not depend "
        "on it",
    )
    q.set_defaults(func=cmd_export)

    q = csub.add_parser("preview", help="write a PNG grid: corruptions down, severities across, for a few images")
    data_args(q)
    q.add_argument("--out", required=True, help="PNG file to write")
    q.add_argument(
        "--images", nargs="+", type=int, default=[0, 1, 2], metavar="I", help="positions in the split (default: 0 1 2)"
    )
    q.add_argument(
        "--scale", type=int, default=2, choices=range(1, 9), metavar="K", help="pixel scale 1..8 (default: 2)"
    )
    q.set_defaults(func=cmd_preview)
