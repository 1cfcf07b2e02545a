"""Blur: defocus, glass, motion, zoom and gaussian.

Each filter reproduces the reference library's arithmetic where the floor to uint8 is sensitive
to it (OpenCV's disk filter and scipy's gaussian, replayed in float64), or is exact on weights put
on the 2^-16 grid (zoom, ImageMagick's motion blur); see kernels.py.
"""

from __future__ import annotations

import functools

import numpy as np

from kdbench.evaluation.conditions.corruptions import corruption
from kdbench.evaluation.conditions.corruptions.core import Draw, levels_to_uint8, to_uint8
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


@corruption(
    "defocus_blur",
    "blur",
    {
        32: [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
        64: [(0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)],
        224: [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
    },
)
def defocus_blur(levels, c, d):
    """Anti-aliased disk blur (cv2.filter2D), radius c[0], alias blur c[1].

    Reflect-101 borders; the kernels are 3x3 or 5x5 at CIFAR's radii, up to 21x21 at ImageNet's.

    Not on the weight grid: the disk's float32 weights sum to 1 +- 1e-7, and with 1/5 or 1/9
    weights a fifth or a ninth of the outputs are within that of an integer, so the floor
    follows the exact weights (float64, one fixed order of taps: the same on any batch)."""
    return levels_to_uint8(apply_taps(levels, _defocus_taps(*c), "reflect101", dtype=torch.float64))


# ---------------------------------------------------------------------------------------- glass
def _glass_draws(c, side):
    sigma, delta, iterations = c
    n = side - 2 * delta
    return (Draw("shift", (iterations, n, n, 2), "uniform", "float32"),)


def glass_sources(shift: torch.Tensor, delta: int, size: int) -> torch.Tensor:
    """Flat source index (B, iterations, size*size) of each iteration's pixel move.

    The reference walks h, w downwards from size - delta and "swaps" x[h, w], x[h+dy, w+dx]
    with a tuple assignment of numpy views: that copies the neighbour into x[h, w] and writes
    the neighbour back onto itself, with dx, dy = randint(-delta, delta) in loop order
    (shift[..., 0] is dx, shift[..., 1] is dy). So out[h, w] is the neighbour's value when
    (h, w) is visited: its value from the start of the iteration if it is visited later (always,
    for moves of at most 1: they point up or left), else what it took at its own visit, which
    is followed back by pointer doubling."""
    b, iters, n = shift.shape[:3]
    dev = shift.device
    off = torch.floor(shift * (2 * delta)).to(torch.int64) - delta  # np.random.randint(-delta, delta)
    hs = torch.arange(size - delta, delta, -1, device=dev)  # range(size - delta, delta, -1)
    rows = hs.view(n, 1) + off[..., 1]
    cols = hs.view(1, n) + off[..., 0]
    src = torch.arange(size * size, device=dev).repeat(b, iters, 1).view(b, iters, size, size)
    src[:, :, hs.view(n, 1), hs.view(1, n)] = rows * size + cols
    src = src.view(b, iters, size * size)
    if delta > 1:
        visit = torch.full((size * size,), size * size, dtype=torch.int64, device=dev)  # border: never visited
        visit[(hs.view(n, 1) * size + hs.view(1, n)).reshape(-1)] = torch.arange(n * n, device=dev)
        moved = visit[src] < visit  # the neighbour took its new value before this pixel read it
        while bool(moved.any()):
            src, moved = torch.where(moved, src.gather(2, src), src), moved & moved.gather(2, src)
    return src


@corruption(
    "glass_blur",
    "blur",
    {
        32: [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
        64: [(0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)],
        224: [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
    },
    draws=_glass_draws,
)
def glass_blur(levels, c, d):
    """Gaussian blur, local pixel moves, gaussian blur again: (sigma, max move, rounds) = c.

    The first blur is floored to uint8, as the reference does."""
    sigma, delta, iterations = c
    x = scipy_gaussian(levels.double() / 255.0, sigma).mul_(255).floor_()  # np.uint8(gaussian(x / 255.) * 255)
    b, side = x.shape[0], x.shape[-1]
    src = glass_sources(d["shift"], delta, side)
    flat = x.reshape(b, 3, side * side)
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


@corruption(
    "motion_blur",
    "blur",
    {
        32: [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
        64: [(10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)],
        224: [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
    },
    draws=lambda c, side: (Draw("angle", (1,)),),
)
def motion_blur(levels, c, d):
    """ImageMagick's motion blur, radius c[0], sigma c[1], angle uniform in [-45, 45] degrees."""
    angle = -45.0 + 90.0 * d["angle"][:, 0]  # np.random.uniform(-45, 45)
    return motion_blur_levels(levels, c[0], c[1], angle)


# ----------------------------------------------------------------------------------------- zoom
def _arange(stop, step=0.01):
    # The reference's np.arange(1, stop, step): floating point adds a last factor at 1.06 and 1.11.
    return tuple(float(z) for z in np.arange(1, stop, step))


CIFAR_SIDE = 32


@functools.lru_cache(maxsize=None)
def _zoom_operator(factors: tuple, device: str) -> list[tuple[int, int, torch.Tensor]]:
    """The average of a 32x32 image and its clipped zooms as a (1024, 1024) operator on the weight
    grid, cut into one band per output row: (first input row, last + 1, (32 * rows, 32) block)."""
    n = CIFAR_SIDE
    k = np.eye(n * n)
    for z in factors:
        a = clipped_zoom_matrix(n, z)
        k += np.kron(a, a)
    k = on_grid(k / (len(factors) + 1)).reshape(n, n, n, n)  # (out row, out col, in row, in col)
    bands = []
    for y in range(n):
        used = np.flatnonzero(np.abs(k[y]).sum(axis=(0, 2)))
        lo, hi = int(used.min()), int(used.max()) + 1
        block = k[y, :, lo:hi, :].reshape(n, -1).T  # (rows * 32, 32)
        bands.append((lo, hi, torch.tensor(block, dtype=torch.float32, device=device)))
    return bands


@functools.lru_cache(maxsize=None)
def _zoom_taps(side: int, zoom: float, device: str):
    """One axis of a clipped zoom as two taps per output: (first source, second source, weight
    of the second) from clipped_zoom_matrix, whose rows hold at most two neighbours."""
    m = clipped_zoom_matrix(side, zoom)
    first = np.argmax(m != 0, axis=1)
    second = np.minimum(first + 1, side - 1)
    frac = m[np.arange(side), second] * (second != first)
    as_t = functools.partial(torch.tensor, device=device)
    return as_t(first), as_t(second), as_t(frac, dtype=torch.float64).view(-1, 1)


def _clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """scipy.ndimage.zoom(order=1) of the centre crop, trimmed, in float64 (B, C, S, S): rows,
    then columns."""
    a, b, f = _zoom_taps(x.shape[-1], float(zoom), str(x.device))
    x = x[..., a, :] * (1 - f) + x[..., b, :] * f
    return x[..., a] * (1 - f.T) + x[..., b] * f.T


@corruption(
    "zoom_blur",
    "blur",
    {
        32: [_arange(1.06), _arange(1.11), _arange(1.16), _arange(1.21), _arange(1.26)],
        64: [_arange(1.06), _arange(1.11), _arange(1.16), _arange(1.21), _arange(1.26)],
        224: [_arange(1.11), _arange(1.16), _arange(1.21, 0.02), _arange(1.26, 0.02), _arange(1.31, 0.03)],
    },
)
def zoom_blur(levels, c, d):
    """Mean of the image and its centre crops zoomed back by 7, 12, 16, 21, 26 factors (CIFAR's
    and Tiny-ImageNet's; ImageNet's: 12, 17, 11, 14, 11).

    At 32 px an exact operator on the 2^-16 weight grid (CIFAR-10-C's bytes since the first
    release). At other sides each zoom is computed in float64, stored as float32 and summed in
    float32 in the reference's order, as scipy and numpy do: the dense operator would need
    side^4 entries."""
    b, _, _, side = levels.shape
    if side != CIFAR_SIDE:
        x = (levels.double() / 255.0).float()  # (np.array(x) / 255.).astype(np.float32)
        x64 = x.double()  # scipy zooms the float32 image in double
        out = torch.zeros_like(x)
        for z in c:
            out += _clipped_zoom(x64, z).float()
        return to_uint8((x + out) / (len(c) + 1))
    x = levels.float()
    out = torch.empty_like(x)
    for y, (lo, hi, block) in enumerate(_zoom_operator(c, str(levels.device))):
        # exact: integer levels times the 2^-16 grid; a zoom mixes only nearby rows
        out[:, :, y, :] = torch.matmul(x[:, :, lo:hi, :].reshape(b * 3, -1), block).view(b, 3, side)
    return levels_to_uint8(out)


@corruption(
    "gaussian_blur",
    "blur",
    {32: [0.4, 0.6, 0.7, 0.8, 1.0], 64: [0.5, 0.75, 1, 1.25, 1.5], 224: [1, 2, 3, 4, 6]},
)
def gaussian_blur(levels, c, d):
    """skimage.filters.gaussian(sigma=c), nearest borders, truncate 4."""
    return to_uint8(scipy_gaussian(levels.double() / 255.0, c))
