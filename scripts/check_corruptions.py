#!/usr/bin/env python
"""How closely kdbench's corruptions follow the reference at 64 and 224 px: figures, not a test.

For each corruption and severity, kdbench corrupts N photographs and so do two oracles, on the
same random numbers:

- the reference's own steps (make_tinyimagenet_c.py at 64 px, make_imagenet_c.py at 224 px),
  computed per image through the libraries the scripts call: tests/test_corruptions_oracles.py's
  oracles, the ones the test suite checks on fewer images;
- at 224 px, the `imagecorruptions` package (pip install --no-deps imagecorruptions), whose
  random calls are fed kdbench's draws. It follows make_imagenet_c.py except where it says so
  below (its own motion blur, its frost and elastic transform), so those rows measure how far
  the package is from the reference, not kdbench's error.

Images: 64 px: tiles of scikit-image's photographs; 224 px: those photographs resized to 256 on
the shorter side and centre-cropped, as ImageNet is (plus tiles of the larger ones).

    python scripts/check_corruptions.py                    # both sizes, 12 images
    python scripts/check_corruptions.py --side 224 --n 6   # quicker

Prints one row per corruption and size: the share of values equal, the share one level off,
the largest difference, over N images x 5 severities x 3 channels.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
warnings.filterwarnings("ignore")

import test_corruptions_oracles as oracles  # noqa: E402  (the reference steps, defined once)

from kdbench.evaluation.conditions.corruptions import ALL, CORRUPTIONS  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina", "hubble_deep_field")


def photographs(side: int, n: int) -> np.ndarray:
    """uint8 (n, side, side, 3)."""
    out = []
    for name in PHOTOS:
        img = getattr(skdata, name)()
        if img.ndim != 3 or img.shape[2] < 3:
            continue
        img = np.ascontiguousarray(img[..., :3])
        if side >= 128:  # resize 256 (shorter side), centre crop, as ImageNet's evaluation does
            h, w = img.shape[:2]
            scale = 256 / min(h, w)
            pil = Image.fromarray(img).resize((round(w * scale), round(h * scale)), Image.BILINEAR)
            a = np.asarray(pil)
            top, left = (a.shape[0] - side) // 2, (a.shape[1] - side) // 2
            out.append(a[top : top + side, left : left + side])
        h, w = img.shape[:2]
        step = max(side, min(h, w) // 3)
        out += [
            img[i : i + side, j : j + side] for i in range(0, h - side + 1, step) for j in range(0, w - side + 1, step)
        ]
    return np.stack(out[:n])


def reference_oracle(name):
    table = {**{k: v[0] for k, v in oracles.DETERMINISTIC.items()}, **{k: v[0] for k, v in oracles.RANDOM.items()}}
    table["spatter"] = oracles.ref_spatter
    fn = table[name]
    return fn if name in oracles.RANDOM or name == "spatter" else (lambda x, c, d: fn(x, c))


def figures(got: np.ndarray, want: np.ndarray) -> tuple[float, float, int]:
    diff = np.abs(got.astype(int) - want.astype(int))
    return float((diff == 0).mean()), float((diff == 1).mean()), int(diff.max())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--side", type=int, choices=[64, 224], action="append", help="64, 224 or both (default)")
    ap.add_argument("--n", type=int, default=12, help="images per size")
    ap.add_argument("--names", nargs="*", default=list(ALL))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    imagecorruptions = oracles.imagecorruptions_module()
    if imagecorruptions is None:
        print("(imagecorruptions not installed: pip install --no-deps imagecorruptions; its column is skipped)")
    print("| size | corruption | oracle | equal | one level off | largest difference | seconds |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for side in args.side or [64, 224]:
        x = photographs(side, args.n)
        for name in args.names:
            t0 = time.perf_counter()
            per = {"reference steps": ([], [])}
            use_ic = imagecorruptions is not None and side == 224 and name not in ("impulse_noise", "elastic_transform")
            if use_ic:
                per["imagecorruptions"] = ([], [])
            oracle = reference_oracle(name)
            for s in range(1, 6):
                got, draws = oracles.ours(name, x, s)
                c = CORRUPTIONS.get(name).params_of(s, side)
                per["reference steps"][0].append(got)
                per["reference steps"][1].append(np.stack([oracle(xi, c, d) for xi, d in zip(x, draws)]))
                if use_ic:
                    want = []
                    for xi, d in zip(x, draws):
                        with oracles.fed(d, c):
                            want.append(imagecorruptions.corrupt(xi, corruption_name=name, severity=s))
                    per["imagecorruptions"][0].append(got)
                    per["imagecorruptions"][1].append(np.stack(want))
            seconds = time.perf_counter() - t0
            for oracle_name, (got, want) in per.items():
                eq, one, top = figures(np.concatenate(got), np.concatenate(want))
                differs = oracles.IMAGECORRUPTIONS_DIFFERS
                note = f" ({differs[name]})" if oracle_name == "imagecorruptions" and name in differs else ""
                cells = [side, name, oracle_name + note, f"{100 * eq:.3f}%", f"{100 * one:.3f}%", top, f"{seconds:.0f}"]
                print("| " + " | ".join(map(str, cells)) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
