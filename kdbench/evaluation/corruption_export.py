"""Writing corrupted data sets to disk in the released CIFAR-10-C layout (for square images of any
side, corrupted with the parameter set for it), and preview grids.

    <out>/<corruption>.npy   uint8 (len(severities) * N, S, S, 3); severity s (the k-th of
                             those asked, k from 0) of image i at row k * N + i, images in
                             dataset order. With the default severities 1..5 this is the
                             release's row (s - 1) * N + i.
    <out>/labels.npy         the labels, repeated once per severity (uint8, as released)
    <out>/export.json        what was written: names, severities, seed, dataset identity,
                             generator version (so a regenerated set can be matched to its source)

Regenerated images follow the released sets' distribution (same steps, same parameters) but not
their bytes: the reference generator was never seeded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from kdbench.evaluation.conditions.corruptions import ALL, GENERATOR_VERSION, corrupt, describe_set, resolve_names
from kdbench.evaluation.conditions.corruptions.core import SEVERITIES, check_severity
from kdbench.util.atomic import atomic_path, write_text


def _severities(severities) -> list[int]:
    out = [check_severity(s) for s in (severities or SEVERITIES)]
    if len(set(out)) != len(out):
        raise ValueError("severities repeat")
    return out


def export(
    images: torch.Tensor,
    labels: torch.Tensor,
    indices: torch.Tensor,
    out_dir,
    *,
    names: Sequence[str] | str = ALL,
    severities: Sequence[int] | None = None,
    seed: int = 0,
    batch_size: int = 1000,
    device: str = "cpu",
    identity: str = "",
    workers: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
    timings: dict | None = None,
) -> dict:
    """Corrupt uint8 `images` (N, 3, S, S) and write the released layout under `out_dir`.
    Each file lands whole or not at all. Returns the manifest (also written as export.json).

    `workers` > 1 corrupts that many corruptions at once in separate processes (CPU only): the
    per-image draws and table lookups are Python-bound, so one process leaves cores idle. Bytes
    do not depend on it. `timings`, when given, receives the seconds spent generating and
    writing, summed over corruptions (so over processes)."""
    names = resolve_names(names)
    severities = _severities(severities)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"expected square uint8 images (N, 3, S, S), got {images.dtype} {tuple(images.shape)}")
    if workers < 1:
        raise ValueError(f"workers: expected 1 or more, got {workers}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(images)
    jobs = [(name, images, indices, severities, seed, batch_size, device, out_dir / f"{name}.npy") for name in names]
    spent = {"generate_s": 0.0, "write_s": 0.0}

    def finished(i, name, t):
        for k in spent:
            spent[k] += t[k]
        if progress:
            progress(name, i, len(names))

    if workers == 1 or len(names) == 1 or torch.device(device).type != "cpu":
        for i, job in enumerate(jobs, 1):
            finished(i, job[0], _write_corruption(*job))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, torch.get_num_threads() // workers)
        # spawn: a forked torch may hang on its thread pools
        with ProcessPoolExecutor(
            min(workers, len(names)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=torch.set_num_threads,
            initargs=(threads,),
        ) as pool:
            futures = {pool.submit(_write_corruption, *job): job[0] for job in jobs}
            for i, fut in enumerate(as_completed(futures), 1):
                finished(i, futures[fut], fut.result())
    lab = labels.cpu().numpy()
    lab = lab.astype(np.uint8) if lab.min() >= 0 and lab.max() < 256 else lab.astype(np.int64)
    with atomic_path(out_dir / "labels.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.tile(lab, len(severities)))
    manifest = dict(
        kind="kdbench corruption export",
        generator_version=GENERATOR_VERSION,
        names=names,
        severities=severities,
        seed=int(seed),
        n=int(n),
        dataset=identity,
        rows="k * n + i for the k-th severity listed and image i in dataset order",
        parameters=describe_set(int(images.shape[-1])),
        note="regenerated: the released set's distribution, not its bytes",
    )
    write_text(out_dir / "export.json", json.dumps(manifest, indent=2) + "\n")
    if timings is not None:
        timings.update(spent)
    return manifest


def _write_corruption(name, images, indices, severities, seed, batch_size, device, path) -> dict:
    """One corruption's file, streamed batch by batch in row order: sequential writes, where a
    memory map of the 150 MB file cost a page fault per 4 KB."""
    n = len(images)
    generate = write = 0.0
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "|u1", "fortran_order": False, "shape": (len(severities) * n, *images.shape[2:], 3)}
        )
        for s in severities:
            for start in range(0, n, batch_size):
                sl = slice(start, min(n, start + batch_size))
                t0 = time.perf_counter()
                y = (
                    corrupt(name, images[sl].to(device), indices[sl], s, seed)
                    .permute(0, 2, 3, 1)
                    .contiguous()
                    .cpu()
                    .numpy()
                )
                t1 = time.perf_counter()
                fh.write(y.tobytes())
                generate, write = generate + t1 - t0, write + time.perf_counter() - t1
    return {"generate_s": generate, "write_s": write}


def preview_grid(
    images: torch.Tensor,
    indices: torch.Tensor,
    *,
    names: Sequence[str] | str = ALL,
    severities: Sequence[int] | None = None,
    seed: int = 0,
    scale: int = 2,
    device: str = "cpu",
):
    """A PIL image: one row per corruption, for each image its clean version then one column per
    severity, scaled up `scale` times (nearest), names down the left, severities along the top."""
    from PIL import Image, ImageDraw, ImageFont

    names = resolve_names(names)
    severities = _severities(severities)
    images = images.to(device)
    k = len(images)
    cell = int(images.shape[-1]) * scale
    gap = 4
    label_w, label_h = 112, 14
    cols = k * (1 + len(severities))
    width = label_w + cols * (cell + 1) + (k - 1) * gap
    height = label_h + len(names) * (cell + 1)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()

    def x_of(j, col):
        return label_w + j * ((1 + len(severities)) * (cell + 1) + gap) + col * (cell + 1)

    for j in range(k):
        for col, text in enumerate(["clean"] + [f"s{s}" for s in severities]):
            draw.text((x_of(j, col) + 2, 1), text, fill="black", font=font)
    for r, name in enumerate(names):
        y = label_h + r * (cell + 1)
        draw.text((2, y + cell // 2 - 6), name, fill="black", font=font)
        tiles = [images] + [corrupt(name, images, indices, s, seed) for s in severities]
        for col, batch in enumerate(tiles):
            for j in range(k):
                tile = Image.fromarray(batch[j].permute(1, 2, 0).cpu().numpy()).resize((cell, cell), Image.NEAREST)
                canvas.paste(tile, (x_of(j, col), y))
    return canvas


def save_png(image, path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
