"""Blur: defocus, glass, motion, zoom and gaussian.

Each filter reproduces the reference library's arithmetic where the floor to uint8 is sensitive
to it (OpenCV's disk filter and scipy's gaussian, replayed in float64), or is exact on weights put
on the 2^-16 grid (zoom, ImageMagick's motion blur); see kernels.py.
"""

from __future__ import annotations

import functools

import numpy as np

from kdbench.evaluation.conditions.corruptions import corruption
from kdbench.evaluation.conditions.corruptions.core import SIZE, Draw, levels_to_uint8, to_uint8
from kdbench.evaluation.conditions.corruptions.kernels import (
    apply_taps,
    clipped_zoom_matrix,
    disk_kernel,
    imagemagick_motion_offsets,
    imagemagick_motion_weights,
    imagemagick_quantize,
    on_grid,
    scipy_gaussian,
    shifted_sum,
)
from kdbench.util.lazy import lazy

torch = lazy("torch")


@functools.lru_cache(maxsize=None)
def _defocus_taps(radius: float, alias_blur: float):
    k = disk_kernel(radius, alias_blur).astype(np.float64)
    r = k.shape[0] // 2
    return [(int(i) - r, int(j) - r, float(k[i, j])) for i, j in zip(*np.nonzero(k))]


@corruption("defocus_blur", "blur", [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)])
def defocus_blur(levels, c, d):
    """Anti-aliased disk blur (cv2.filter2D), radius c[0], alias blur c[1].

    Reflect-101 borders; the kernels are 3x3 or 5x5 at these radii.

    Not on the weight grid: the disk's float32 weights sum to 1 +- 1e-7, and with 1/5 or 1/9
    weights a fifth or a ninth of the outputs are within that of an integer, so the floor
    follows the exact weights (float64, one fixed order of taps: the same on any batch)."""
    return levels_to_uint8(apply_taps(levels, _defocus_taps(*c), "reflect101", dtype=torch.float64))


# ---------------------------------------------------------------------------------------- glass
def _glass_draws(c):
    sigma, delta, iterations = c
    n = SIZE - 2 * delta
    return (Draw("shift", (iterations, n, n, 2), "uniform", "float32"),)


def glass_sources(shift: torch.Tensor, delta: int, size: int = SIZE) -> torch.Tensor:
    """Flat source index (B, iterations, size*size) of each iteration's pixel move.

    The reference walks h, w downwards from size - 1 - delta and "swaps" x[h, w], x[h+dy, w+dx]
    with a tuple assignment of numpy views: that copies the up-left neighbour into x[h, w] and writes
    the neighbour back onto itself. The neighbour is always visited later, so it still holds
    its value from the start of the iteration: each iteration is one gather,
    out[h, w] = in[h + dy, w + dx], with dx, dy = randint(-delta, delta) in loop order
    (shift[..., 0] is dx, shift[..., 1] is dy)."""
    b, iters, n = shift.shape[:3]
    off = torch.floor(shift * (2 * delta)).to(torch.int64) - delta  # np.random.randint(-delta, delta)
    hs = torch.arange(size - delta, delta, -1, device=shift.device)  # range(size - delta, delta, -1)
    rows = hs.view(n, 1) + off[..., 1]
    cols = hs.view(1, n) + off[..., 0]
    src = torch.arange(size * size, device=shift.device).repeat(b, iters, 1).view(b, iters, size, size)
    src[:, :, hs.view(n, 1), hs.view(1, n)] = rows * size + cols
    return src.view(b, iters, size * size)


@corruption(
    "glass_blur", "blur", [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)], draws=_glass_draws
)
def glass_blur(levels, c, d):
    """Gaussian blur, local pixel moves, gaussian blur again: (sigma, max move, rounds) = c.

    The first blur is floored to uint8, as the reference does."""
    sigma, delta, iterations = c
    x = scipy_gaussian(levels.double() / 255.0, sigma).mul_(255).floor_()  # np.uint8(gaussian(x / 255.) * 255)
    b = x.shape[0]
    src = glass_sources(d["shift"], delta)
    flat = x.reshape(b, 3, SIZE * SIZE)
    for it in range(iterations):
        flat = flat.gather(2, src[:, it].unsqueeze(1).expand(b, 3, -1))
    return to_uint8(scipy_gaussian(flat.view_as(x) / 255.0, sigma))


# --------------------------------------------------------------------------------------- motion
@functools.lru_cache(maxsize=None)
def motion_weights(radius: float, sigma: float, device: str) -> torch.Tensor:
    return torch.tensor(on_grid(imagemagick_motion_weights(radius, sigma)[None])[0], dtype=torch.float32, device=device)


def motion_blur_levels(levels: torch.Tensor, radius: float, sigma: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """Wand's MagickMotionBlurImage(radius, sigma, angle) on an 8-bit image, per-image angles: uint8."""
    w = motion_weights(float(radius), float(sigma), str(levels.device))
    angles = angles_deg.detach().cpu()
    dx, dy = imagemagick_motion_offsets(w.numel(), angles.numpy())
    return imagemagick_quantize(shifted_sum(levels, w, torch.as_tensor(dx), torch.as_tensor(dy), order=angles))


@corruption("motion_blur", "blur", [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)], draws=lambda c: (Draw("angle", (1,)),))
def motion_blur(levels, c, d):
    """ImageMagick's motion blur, radius c[0], sigma c[1], angle uniform in [-45, 45] degrees."""
    angle = -45.0 + 90.0 * d["angle"][:, 0]  # np.random.uniform(-45, 45)
    return motion_blur_levels(levels, c[0], c[1], angle)


# ----------------------------------------------------------------------------------------- zoom
def _arange(stop):
    # The reference's np.arange(1, stop, 0.01): floating point adds a last factor at 1.06 and 1.11.
    return tuple(float(z) for z in np.arange(1, stop, 0.01))


@functools.lru_cache(maxsize=None)
def _zoom_operator(factors: tuple, device: str) -> list[tuple[int, int, torch.Tensor]]:
    """The average of the image and its clipped zooms as a (1024, 1024) operator on the weight
    grid, cut into one band per output row: (first input row, last + 1, (32 * rows, 32) block)."""
    k = np.eye(SIZE * SIZE)
    for z in factors:
        a = clipped_zoom_matrix(SIZE, z)
        k += np.kron(a, a)
    k = on_grid(k / (len(factors) + 1)).reshape(SIZE, SIZE, SIZE, SIZE)  # (out row, out col, in row, in col)
    bands = []
    for y in range(SIZE):
        used = np.flatnonzero(np.abs(k[y]).sum(axis=(0, 2)))
        lo, hi = int(used.min()), int(used.max()) + 1
        block = k[y, :, lo:hi, :].reshape(SIZE, -1).T  # (rows * 32, 32)
        bands.append((lo, hi, torch.tensor(block, dtype=torch.float32, device=device)))
    return bands


@corruption("zoom_blur", "blur", [_arange(1.06), _arange(1.11), _arange(1.16), _arange(1.21), _arange(1.26)])
def zoom_blur(levels, c, d):
    """Mean of the image and its centre crops zoomed back by 7, 12, 16, 21, 26 factors."""
    x = levels.float()
    b = x.shape[0]
    out = torch.empty_like(x)
    for y, (lo, hi, block) in enumerate(_zoom_operator(c, str(levels.device))):
        # exact: integer levels times the 2^-16 grid; a zoom mixes only nearby rows
        out[:, :, y, :] = torch.matmul(x[:, :, lo:hi, :].reshape(b * 3, -1), block).view(b, 3, SIZE)
    return levels_to_uint8(out)


@corruption("gaussian_blur", "blur", [0.4, 0.6, 0.7, 0.8, 1.0])
def gaussian_blur(levels, c, d):
    """skimage.filters.gaussian(sigma=c), nearest borders, truncate 4."""
    return to_uint8(scipy_gaussian(levels.double() / 255.0, c))
