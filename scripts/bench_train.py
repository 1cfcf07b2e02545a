"""Training overhead: images/s of one epoch of kdbench's training loop against a bare PyTorch loop
written here, same model, data, batch, optimiser and precision (goal: ratio bare/kdbench time at
most 1.10). A figure-printing benchmark, not a test.

The bare loop is what a user would write for speed: uint8 data resident on the device, batches
cut by a permutation there, crop and flip drawn on the device, channels_last and loss sums kept
on the device on a GPU, one read at the end of the epoch. `kd` runs the teacher on every
augmented batch in both loops (Hinton's loss at T = 4, alpha = 0.1).

    python scripts/bench_train.py --arch cnn_small resnet20 --n 2000 --threads 1
    python scripts/bench_train.py --data-root /tmp/cifar10 --device cuda --arch resnet20 wrn_40_2 \\
        --methods baseline kd --precision fp32 bf16 --n 10000 --epochs 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdbench.config import TrainRecipe
from kdbench.models import create_model, wrap
from kdbench.training.batches import PAD
from kdbench.training.loop import train
from kdbench.training.methods import METHODS, build_method

T, ALPHA = 4.0, 0.1


def bare_epoch(net, teacher, images, labels, recipe, device, precision, gen) -> None:
    """One epoch written plainly: the loop kdbench's should cost no more than."""
    cuda = device.type == "cuda"
    opt = torch.optim.SGD(
        net.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )
    n, bs = len(images), recipe.batch_size
    perm = torch.randperm(n, device=device, generator=gen)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    ar = torch.arange(32, device=device)
    net.train()
    for start in range(0, n, bs):
        idx = perm[start : start + bs]
        x, y = images[idx], labels[idx]
        b = len(idx)
        off = torch.randint(0, 2 * PAD + 1, (b, 2), device=device, generator=gen)
        flip = torch.rand(b, device=device, generator=gen) < 0.5
        rows = off[:, :1] + ar
        cols = torch.where(flip[:, None], (off[:, 1:] + ar).flip(1), off[:, 1:] + ar)
        x = F.pad(x, (PAD,) * 4).permute(0, 2, 3, 1)[
            torch.arange(b, device=device)[:, None, None], rows[:, :, None], cols[:, None, :]
        ]
        # the layout kdbench uses: channels_last on a GPU; on the CPU, NCHW, as channels_last
        # there runs other kernels, whose numbers differ
        x = (
            x.permute(0, 3, 1, 2)
            .float()
            .div_(255)
            .contiguous(memory_format=torch.channels_last if cuda else torch.contiguous_format)
        )
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            z = net(x)
            loss = F.cross_entropy(z, y)
            if teacher is not None:
                with torch.no_grad():
                    zt = teacher(x)
                kl = F.kl_div(F.log_softmax(z / T, 1), F.log_softmax(zt / T, 1), log_target=True, reduction="batchmean")
                loss = ALPHA * loss + (1 - ALPHA) * T * T * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * b
        correct += (z.argmax(1) == y).sum()
    float(loss_sum), int(correct)  # the epoch's one read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", help="CIFAR-10 root (any supported layout); synthetic data when absent")
    ap.add_argument("--arch", nargs="+", default=["cnn_small", "resnet20"])
    ap.add_argument("--teacher-arch", default="resnet56")
    ap.add_argument("--methods", nargs="+", default=["baseline", "kd"], choices=["baseline", "kd"])
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    ap.add_argument("--n", type=int, default=2000, help="training images per epoch")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1, help="epochs per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each loop, alternating (the median is used)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, help="torch CPU threads")
    ap.add_argument(
        "--nondeterministic",
        action="store_true",
        help="cudnn.benchmark on, deterministic kernels off (as kdbench run --nondeterministic)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from kdbench.pipeline.prepare import make_deterministic

    make_deterministic(not args.nondeterministic)
    device = torch.device(args.device)
    from kdbench.data import load_dataset, resolve_root

    if args.data_root:
        split = load_dataset("cifar10", resolve_root(args.data_root), train_subset=args.n).train
    else:
        split = load_dataset("synthetic", None, n_train=args.n, n_test=10).train
    images, labels = split.images[: args.n], split.labels[: args.n]
    images_d, labels_d = images.to(device), labels.to(device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch "
        f"{torch.__version__}, "
        f"threads {torch.get_num_threads()}, {len(images)} images x {args.epochs} epoch(s), batch {args.batch_size}, "
        f"{'non' if args.nondeterministic else ''}deterministic"
    )
    print(f"{'arch':<10} {'method':<9} {'precision':<9} {'kdbench img/s':>14} {'bare img/s':>11} {'ratio':>6}")
    for arch in args.arch:
        for method_name in args.methods:
            for precision in args.precision:
                k, b = measure(args, arch, method_name, precision, images, labels, images_d, labels_d, device, sync)
                per = len(images) * args.epochs
                print(
                    f"{arch:<10} {method_name:<9} {precision:<9} {per / k:>14.0f} {per / b:>11.0f} {k / b:>6.3f}",
                    flush=True,
                )


def measure(
    args, arch, method_name, precision, images, labels, images_d, labels_d, device, sync
) -> tuple[float, float]:
    """Median seconds of kdbench's loop and of the bare one, timed alternately after a warm-up."""
    recipe = TrainRecipe(
        epochs=args.epochs, batch_size=args.batch_size, lr=0.05, precision=precision, schedule="constant"
    )
    teacher = None
    if method_name == "kd":
        torch.manual_seed(1)
        teacher = wrap(create_model(args.teacher_arch), "cifar10").to(device).eval()
        if device.type == "cuda":
            teacher.to(memory_format=torch.channels_last)
    method = build_method(METHODS.get(method_name).Params(**({"temperature": T, "alpha": ALPHA} if teacher else {})))

    def fresh():
        torch.manual_seed(0)
        return wrap(create_model(arch), "cifar10").to(device)

    def run_kdbench():
        train(fresh(), images, labels, recipe, method, 0, teachers=[teacher] if teacher else [], device=device)

    def run_bare():
        net = fresh()
        if device.type == "cuda":
            net.to(memory_format=torch.channels_last)
        gen = torch.Generator(device=device).manual_seed(0)
        for _ in range(args.epochs):
            bare_epoch(net, teacher, images_d, labels_d, recipe, device, precision, gen)

    times = {"kdbench": [], "bare": []}
    for fn in (run_kdbench, run_bare):  # warm-up: kernels, allocator, autotuning
        fn()
    for _ in range(args.repeats):
        for key, fn in (("kdbench", run_kdbench), ("bare", run_bare)):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[key].append(time.perf_counter() - t0)
    return statistics.median(times["kdbench"]), statistics.median(times["bare"])


if __name__ == "__main__":
    main()
