"""Evaluation overhead: the time kdbench takes to score the clean condition, divided by the time of
the bare forward passes of the same model on the same images (target: at most 1.15); with
`--attack NAME`, the time kdbench takes to score clean + that attack (robust convention and
worst case included), divided by the bare attack calls, the same attack objects on the same
tensors in a plain loop (target: at most 1.10).

    python scripts/bench_eval_overhead.py --data-root ../shared/data/cifar10-jpeg --arch resnet20 --n 2000
    python scripts/bench_eval_overhead.py --arch resnet20 --n 500 --attack pgd --steps 10 --repeats 3
    python scripts/bench_eval_overhead.py --arch resnet20 --n 1000 --attack autoattack --repeats 1 --device cuda

With `--attack autoattack` the bare side is pyautoattack itself, called directly as its README shows
(standard version, the same model and eps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kdbench.evaluation.conditions import CONDITIONS
from kdbench.evaluation.evaluate import evaluate
from kdbench.models import create_model, wrap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", help="CIFAR-10 root; synthetic data when absent")
    ap.add_argument("--arch", default="resnet20")
    ap.add_argument(
        "--checkpoint",
        help="weights for --arch (a path or pkg:...; inputs in [0, 1], no normalisation); else random weights",
    )
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--attack", help="fgsm, pgd, cw, apgd, apgd_t, square or autoattack: time that attack instead of clean scoring"
    )
    ap.add_argument("--eps", default="8/255")
    ap.add_argument("--steps", type=int, help="the attack's steps (where it has them)")
    args = ap.parse_args()

    from kdbench.data import load_dataset, resolve_root

    if args.data_root:
        test = load_dataset("cifar10", resolve_root(args.data_root)).test
    else:
        test = load_dataset("synthetic", None, n_train=10, n_test=args.n).test
    images, labels, indices = test.images[: args.n], test.labels[: args.n], test.indices[: args.n]
    torch.manual_seed(0)
    if args.checkpoint:
        from kdbench.config import TeacherSpec
        from kdbench.models.teachers import load_checkpoint_teacher

        model = load_checkpoint_teacher(TeacherSpec(checkpoint=args.checkpoint, arch=args.arch, normalize="none"))
    else:
        model = wrap(create_model(args.arch), "cifar10")
    model = model.to(args.device).eval().requires_grad_(False)
    clean = CONDITIONS.get("clean").build(CONDITIONS.get("clean").Params(), 0)
    conditions = clean

    # The bare loop: images already float on the device, nothing recorded.
    floats = images.to(args.device).float().div(255)
    labels_d = labels.to(args.device)

    def bare():
        with torch.inference_mode():
            for i in range(0, len(floats), args.batch_size):
                model(floats[i : i + args.batch_size])
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    if args.attack:
        from kdbench.util.levels import parse_fraction

        eps = parse_fraction(args.eps)
        cls = CONDITIONS.get(args.attack)
        params = {"eps": [eps], **({"steps": args.steps} if args.steps and "steps" in cls.Params.model_fields else {})}
        (attack,) = cls.build(cls.Params(**params), 0)
        attack.batch_size = args.batch_size
        conditions = clean + [attack]
        size = len(floats) if attack.whole_set else args.batch_size

        def bare():
            for i in range(0, len(floats), size):
                attack.attack(model, floats[i : i + size], labels_d[i : i + size], indices[i : i + size], eps)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        if args.attack == "autoattack":

            def bare():
                from pyautoattack import AutoAttack

                aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0, device=args.device)
                aa.verbose = False
                aa.run_standard_evaluation(floats, labels_d, batch_size=args.batch_size)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()

    def scored():
        evaluate({"m": model}, conditions, images, labels, indices, batch_size=args.batch_size, device=args.device)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def timed(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    bare(), scored()  # warm up
    times_bare, times_scored = [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        times_bare.append(timed(bare))
        times_scored.append(timed(scored))
    # the minimum is the least disturbed run of each (as timeit advises); the median is printed too
    b, s = min(times_bare), min(times_scored)
    what = f"attack {args.attack} eps {args.eps}" if args.attack else "clean"
    print(
        f"arch {args.arch}, {len(images)} images, batch {args.batch_size}, device {args.device}, threads "
        f"{torch.get_num_threads()}, {what}"
    )
    mb, ms = statistics.median(times_bare), statistics.median(times_scored)
    target = 1.10 if args.attack else 1.15
    print(
        f"bare {'attack calls' if args.attack else 'forward passes'} : {b:.3f} s (min of {args.repeats}; median "
        f"{mb:.3f})"
    )
    print(f"kdbench scoring     : {s:.3f} s (median {ms:.3f})")
    print(f"overhead ratio      : {s / b:.3f} (target <= {target}; ratio of medians {ms / mb:.3f})")
    if args.attack:
        print(
            f"images/s            : kdbench {len(images) / s:.1f}, bare {len(images) / b:.1f} (clean scoring included "
            "in kdbench's)"
        )


if __name__ == "__main__":
    main()
