"""Where kdbench's training loop and the bare one of bench_train.py differ: torch.profiler over one
epoch of each (resnet20, baseline, 4,000 synthetic images, batch 128, cudnn.benchmark on),
printing kernel launches, CPU time and the top operators of each.

    python scripts/profile_train.py --device cuda
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_train

from kdbench.config import TrainRecipe
from kdbench.data import load_dataset
from kdbench.models import create_model, wrap
from kdbench.pipeline.prepare import make_deterministic
from kdbench.training.loop import train
from kdbench.training.methods import METHODS, build_method


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--arch", default="resnet20")
    args = ap.parse_args()
    make_deterministic(False)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    data = load_dataset("synthetic", None, n_train=args.n, n_test=10).train
    recipe = TrainRecipe(epochs=1, batch_size=128, lr=0.05, schedule="constant")
    method = build_method(METHODS.get("baseline").Params())

    def fresh():
        torch.manual_seed(0)
        return wrap(create_model(args.arch), "cifar10").to(dev)

    def ours():
        train(fresh(), data.images, data.labels, recipe, method, 0, device=dev)

    def bare():
        net = fresh()
        if dev.type == "cuda":
            net.to(memory_format=torch.channels_last)
        gen = torch.Generator(device=dev).manual_seed(0)
        bench_train.bare_epoch(net, None, data.images.to(dev), data.labels.to(dev), recipe, dev, "fp32", gen)

    for fn in (ours, bare, ours, bare):  # warm-up: autotuning, allocator
        fn()
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    for round_, (name, fn) in enumerate([("kdbench", ours), ("bare", bare)] * 2):
        with profile(activities=activities) as prof:
            fn()
            sync()
        if round_ < 2:  # the first profiled runs carry the profiler's own start-up
            continue
        events = prof.key_averages()
        kernels = sum(e.count for e in events if e.device_type.name == "CUDA")
        print(
            f"===== {name}: {kernels} kernel launches; CPU {sum(e.self_cpu_time_total for e in events) / 1e3:.1f} ms; "
            f"GPU {sum(getattr(e, 'self_device_time_total', 0) for e in events) / 1e3:.1f} ms"
        )
        print(events.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=45))


if __name__ == "__main__":
    main()
