"""A method's training cost: one epoch of each method divided by one epoch of the hard-label
baseline, same model, data, batch and seed, in one process. By default the robust methods
(expected about steps + 1 for pgd_at: each step runs the inner attack's `steps` forward and
backward passes, then the training pass; ard, rslad and trades add a clean forward); `--methods`
times any (logit-based methods read teacher outputs cached once, as without augmentation; the
feature-based ones run the teacher on every batch, as they always do).

    python scripts/bench_adv_training.py --arch cnn_tiny --n 2000 --steps 10
    python scripts/bench_adv_training.py --arch cnn_tiny --methods kd dkd dist kd_logit_std fitnets at rkd crd
    python scripts/bench_adv_training.py --data-root ../shared/data/cifar10-jpeg --arch resnet20 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kdbench.config import TrainRecipe
from kdbench.models import create_model, wrap
from kdbench.training.batches import predict_logits
from kdbench.training.loop import train
from kdbench.training.methods import METHODS, build_method

METHOD_NAMES = ("baseline", "pgd_at", "trades", "ard", "rslad")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", help="CIFAR-10 root; synthetic data when absent")
    ap.add_argument("--arch", default="cnn_tiny")
    ap.add_argument("--teacher-arch", default="cnn_small")
    ap.add_argument("--n", type=int, default=2000, help="training images per epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="inner attack steps")
    ap.add_argument("--repeats", type=int, default=3, help="epochs timed per method (the median is used)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--methods",
        nargs="+",
        default=list(METHOD_NAMES),
        help="any registered methods (baseline is always timed first)",
    )
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument(
        "--augment",
        action="store_true",
        help="random crop and flip, as the GPU recipes train: every method then "
        "runs its teacher on every batch (no cached outputs)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from kdbench.data import load_dataset, resolve_root

    if args.data_root:  # a class-stratified subset: the ImageFolder layout is sorted by class
        train_split = load_dataset("cifar10", resolve_root(args.data_root), train_subset=args.n).train
    else:
        train_split = load_dataset("synthetic", None, n_train=args.n, n_test=10).train
    images, labels = train_split.images[: args.n], train_split.labels[: args.n]
    recipe = TrainRecipe(epochs=1, batch_size=args.batch_size, lr=0.01, augment=args.augment)
    torch.manual_seed(0)
    teacher = wrap(create_model(args.teacher_arch), "cifar10").to(args.device).eval()
    cached = predict_logits([teacher], images, 512, args.device)
    attack = {"eps": 8 / 255, "step_size": 2 / 255, "steps": args.steps}

    seconds = {}
    for name in dict.fromkeys(["baseline", *args.methods]):
        cls = METHODS.get(name)
        params = cls.Params(attack=attack) if "attack" in cls.Params.model_fields else cls.Params()
        times = []
        for r in range(args.repeats):
            torch.manual_seed(0)
            net = wrap(create_model(args.arch), "cifar10")
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            train(
                net,
                images,
                labels,
                recipe,
                build_method(params),
                seed=r,
                teachers=[teacher] if cls.needs_teacher else (),
                teacher_logits=cached if cls.needs_teacher else None,
                device=args.device,
            )
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        seconds[name] = statistics.median(times)

    print(
        f"{args.arch} (teacher {args.teacher_arch}), {len(images)} images, batch {args.batch_size}, "
        f"{'augmented: teachers run on every batch' if args.augment else 'not augmented: logit teachers cached'}, "
        f"inner attack {args.steps} steps, {args.device}, "
        f"{torch.get_num_threads()} threads; median of {args.repeats} epochs"
    )
    for name, s in seconds.items():
        print(
            f"  {name:<15} {s:8.2f} s/epoch  {len(images) / s:8.0f} images/s  x{s / seconds['baseline']:5.2f} baseline"
        )


if __name__ == "__main__":
    main()
