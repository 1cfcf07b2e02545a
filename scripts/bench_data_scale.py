"""What ImageNet-size data costs on this machine: decoding (256 then centre 224) into kdbench's cache,
reading the cache back memory-mapped, and a ResNet-18 pass over it, measured on synthetic
photo-sized JPEGs and extrapolated to the 50,000 validation images.

    python scripts/bench_data_scale.py --images 1000 --threads 2

Prints figures; asserts nothing (speed targets live here, not in the tests).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

FULL = 50_000


def write_jpegs(root: Path, n: int, classes: int) -> int:
    """`n` JPEGs of ImageNet's typical size (500x375, quality 90): smooth colour fields with noise,
    which compress like photographs rather than like white noise. Returns their bytes."""
    from kdbench.data.imagenet import standard_wnids

    rng = np.random.default_rng(0)
    wnids = standard_wnids()[:classes]
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
    total = 0
    for i in range(n):
        folder = root / "val" / wnids[i % classes]
        folder.mkdir(parents=True, exist_ok=True)
        a, b, c = rng.uniform(0.005, 0.03, 3)
        base = np.stack([np.sin(a * xx + b * yy), np.cos(b * xx - c * yy), np.sin(c * (xx + yy))], -1)
        pixels = np.clip(127 + 100 * base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"ILSVRC2012_val_{i:08d}.JPEG"
        Image.fromarray(pixels).save(path, quality=90)
        total += path.stat().st_size
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    import torch
    import torchvision

    from kdbench.data import load_dataset

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["KDBENCH_CACHE_DIR"] = str(tmp / "cache")
        jpeg_bytes = write_jpegs(tmp / "imagenet", args.images, classes=10)
        start = time.perf_counter()
        first = load_dataset("imagenet", tmp / "imagenet")
        decode = time.perf_counter() - start
        cache = sum(p.stat().st_size for p in (tmp / "cache" / "decoded").glob("*.npy"))
        start = time.perf_counter()
        cached = load_dataset("imagenet", tmp / "imagenet")
        reopen = time.perf_counter() - start
        assert torch.equal(first.test.images, cached.test.images)
        x = cached.test.images
        net = torchvision.models.resnet18(num_classes=1000).eval()
        batch = x[: args.batch].float().div(255)
        with torch.inference_mode():
            net(batch)
            start = time.perf_counter()
            net(batch)
            forward = (time.perf_counter() - start) / args.batch
        net.train()
        start = time.perf_counter()
        net(batch).sum().backward()
        train_step = (time.perf_counter() - start) / args.batch
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    n = args.images
    print(
        f"{n} synthetic 500x375 JPEGs ({jpeg_bytes / n / 1e3:.0f} kB each), {args.threads} torch thread(s), "
        f"{os.cpu_count()} CPU(s) for decoding"
    )
    print(
        f"decode (256, centre 224) into the cache: {decode:.1f} s = {n / decode:.0f} images/s "
        f"-> {FULL:,} images: {FULL / n * decode / 60:.1f} min, once per machine"
    )
    print(
        f"cache: {cache / n / 1e3:.1f} kB per image -> {FULL:,} images: {FULL / n * cache / 2**30:.2f} GiB on disk "
        "(memory-mapped: pages are read as batches use them)"
    )
    print(f"reopen from the cache: {reopen:.2f} s for {n} images (a memory map, no decoding)")
    print(
        f"ResNet-18 at 224, batch {args.batch}: forward {1e3 * forward:.1f} ms/image -> an evaluation pass over "
        f"{FULL:,}: {FULL * forward / 60:.1f} min; forward+backward {1e3 * train_step:.1f} ms/image -> a training "
        f"epoch of {FULL:,}: {FULL * train_step / 60:.1f} min"
    )
    print(f"peak resident memory of this process: {rss / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
