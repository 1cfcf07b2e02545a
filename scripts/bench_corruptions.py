#!/usr/bin/env python
"""Speed of kdbench's CIFAR-10-C corruptions: a figure-printing benchmark, not a test.

For each of the benchmark's 15 corruptions it times kdbench generating all five severities of
N images (default: the 10,000 CIFAR-10 test images) in batches, and the `imagecorruptions`
package corrupting a sample of the same images one at a time in this process. That package
uses ImageNet-C's parameters, so it is a speed reference for the same kind of work on 32x32
images, not an oracle for CIFAR-10-C's bytes (tests/test_corruptions_oracles.py does that).

    python scripts/bench_corruptions.py --data-root ../shared/data/cifar10-jpeg
    python scripts/bench_corruptions.py --n 2000 --reference-n 100     # quicker
    python scripts/bench_corruptions.py --data-root DIR --export /tmp/c10c --target 30   # the export command, by part

Needs `pip install imagecorruptions` for the reference column (it is skipped otherwise).
Prints a table and the total wall time for 15 corruptions x 5 severities x N images; exits 1
when the total misses --target seconds or a corruption is slower than the reference.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdbench.evaluation.conditions.corruptions import BENCHMARK, corrupt


def load_images(data_root, n):
    """(uint8 (n, 3, 32, 32), where they came from): the CIFAR-10 test split when it can be read,
    else 32x32 tiles of scikit-image's photographs (repeated)."""
    from kdbench.data import DataError, load_split

    try:
        data, _, identity = load_split("cifar10", data_root, "test")
        if len(data) >= n:
            return data.images[:n], data.indices[:n], f"CIFAR-10 test ({identity})"
    except (DataError, KeyError, OSError) as exc:
        print(f"(CIFAR-10 not found: {exc}; using scikit-image photographs)", file=sys.stderr)
    from skimage import data as skdata

    tiles = []
    for img in (skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()):
        h, w = img.shape[:2]
        tiles += [img[i : i + 32, j : j + 32] for i in range(0, h - 31, 8) for j in range(0, w - 31, 8)]
    arr = np.stack([tiles[i % len(tiles)] for i in range(n)])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous(), torch.arange(n), "scikit-image photograph tiles"


def imagecorruptions_module():
    """The package, or None, made to run on today's libraries in this process only.

    Its last release (1.1.2, 2020) imports pkg_resources (gone with setuptools 81) just to find
    its frost files, calls skimage's gaussian with `multichannel=True` (removed in skimage 0.19)
    and uses np.float_ (removed in numpy 2). Each stand-in does exactly what the old API did,
    so the package's own code is what gets timed."""
    try:
        importlib.import_module("pkg_resources")
    except ImportError:
        stub = types.ModuleType("pkg_resources")
        stub.resource_filename = lambda package, path: os.path.join(
            os.path.dirname(sys.modules[package].__file__), path
        )
        sys.modules["pkg_resources"] = stub
    if not hasattr(np, "float_"):
        np.float_ = np.float64
    try:
        ic = importlib.import_module("imagecorruptions")
    except ImportError:
        return None
    impl = importlib.import_module("imagecorruptions.corruptions")
    gaussian = impl.gaussian

    def old_gaussian(image, *args, multichannel=None, **kw):
        if multichannel:
            kw["channel_axis"] = -1
        return gaussian(image, *args, **kw)

    impl.gaussian = old_gaussian
    return ic


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_ours(name, images, indices, batch, seed=0):
    sync(images.device)
    start = time.perf_counter()
    for s in range(1, 6):
        for i in range(0, len(images), batch):
            corrupt(name, images[i : i + batch], indices[i : i + batch], s, seed)
    sync(images.device)
    return time.perf_counter() - start


def time_reference(ic, name, images):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(1, 6):
            for img in images:
                ic.corrupt(img, severity=s, corruption_name=name)
    return time.perf_counter() - start


def export_breakdown(args) -> int:
    """`kdbench corruptions export --names benchmark` as a user runs it, in this process, timed by part."""
    from kdbench.data import load_split
    from kdbench.evaluation.corruption_export import export

    t0 = time.perf_counter()
    data, _, identity = load_split("cifar10", args.data_root, "test")
    data = data.subset(torch.arange(min(args.n, len(data))))
    t1 = time.perf_counter()
    timings = {}
    export(
        data.images,
        data.labels,
        data.indices,
        args.export,
        names="benchmark",
        batch_size=args.batch,
        device=args.device,
        identity=identity,
        workers=args.workers,
        timings=timings,
    )
    t2 = time.perf_counter()
    print(
        f"kdbench corruptions export, 15 corruptions x 5 severities x {len(data)} images, {args.workers} worker(s), "
        f"{args.device}:"
    )
    print(f"  read the test split       {t1 - t0:6.1f} s")
    print(
        f"  corrupt (summed/workers)  {timings['generate_s']:6.1f} s ({timings['generate_s'] / args.workers:.1f} s per "
        "worker)"
    )
    print(f"  write .npy (summed)       {timings['write_s']:6.1f} s")
    print(f"  wall, read to last file   {t2 - t0:6.1f} s (target {args.target:.0f} s)")
    return 0 if t2 - t0 <= args.target else 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", help="CIFAR-10 root (else $KDBENCH_DATA_ROOT / the user cache)")
    p.add_argument("--n", type=int, default=10000, help="images per severity for kdbench (default: 10000)")
    p.add_argument("--batch", type=int, default=1000, help="kdbench batch size (default: 1000)")
    p.add_argument(
        "--reference-n", type=int, default=200, help="images per severity for imagecorruptions (default: 200)"
    )
    p.add_argument("--names", nargs="+", default=list(BENCHMARK))
    p.add_argument("--target", type=float, default=60.0, help="seconds allowed for the whole set (default: 60)")
    p.add_argument("--device", default="cpu", help="where kdbench corrupts: cpu, cuda or cuda:N (images start there)")
    p.add_argument(
        "--export",
        metavar="DIR",
        help="then time `kdbench corruptions export` of the benchmark set end to end into DIR "
        "(a scratch folder: 2.3 GB for 10k images), with its breakdown",
    )
    p.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="--export: worker processes (default: the CPU count)"
    )
    args = p.parse_args(argv)
    if args.export:
        return export_breakdown(args)

    images, indices, source = load_images(args.data_root, args.n)
    images = images.to(args.device)
    ic = imagecorruptions_module()
    ref_images = [np.ascontiguousarray(x) for x in images[: args.reference_n].permute(0, 2, 3, 1).cpu().numpy()]
    print(f"data: {len(images)} images, {source}")
    gpu = f", kdbench on {torch.cuda.get_device_name(args.device)}" if images.is_cuda else ""
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs{gpu}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); load average {os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"kdbench: {args.n} images x 5 severities per corruption, batches of {args.batch}; "
        f"imagecorruptions {_version('imagecorruptions') if ic else '(not installed)'}: "
        f"{len(ref_images)} images x 5 severities, one at a time\n"
    )
    head = f"{'corruption':<18} {'kdbench s':>10} {'kdbench img/s':>14} {'imagecorr. img/s':>17} {'speed-up':>9}"
    print(head)
    print("-" * len(head))
    # First calls import codecs and build tables (a second or so, once per process): timed
    # separately so the rates below are steady-state, and added to the total.
    start = time.perf_counter()
    for name in args.names:
        for s in range(1, 6):
            corrupt(name, images[:8], indices[:8], s)
    sync(images.device)
    setup = time.perf_counter() - start
    total, slower = setup, []
    for name in args.names:
        t = time_ours(name, images, indices, args.batch)
        total += t
        ours = 5 * len(images) / t
        ref = ""
        if ic is not None:
            try:
                ref_rate = 5 * len(ref_images) / time_reference(ic, name, ref_images)
                ref = f"{ref_rate:>17.0f} {ours / ref_rate:>8.1f}x"
                if ours < ref_rate:
                    slower.append(name)
            except Exception as exc:
                ref = f"{'error: ' + type(exc).__name__:>17}"
        print(f"{name:<18} {t:>10.2f} {ours:>14.0f} {ref}", flush=True)
    print(f"{'(first calls)':<18} {setup:>10.2f}")
    print("-" * len(head))
    n_sets = len(args.names) * 5
    print(
        f"total: {total:.1f} s for {len(args.names)} corruptions x 5 severities x {len(images)} images "
        f"({n_sets * len(images) / total:.0f} images/s); target {args.target:.0f} s; "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    if slower:
        print(f"slower than imagecorruptions: {', '.join(slower)}")
    return 0 if total <= args.target and not slower else 1


if __name__ == "__main__":
    sys.exit(main())
