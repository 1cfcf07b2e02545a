"""Filters and resamplers shared by the corruptions, built to match the libraries the reference
generator called (scipy/skimage, OpenCV, ImageMagick, Pillow) and to give the same bytes on any
batch size, order and device.

The reference floors its float results to uint8, so where a filter's exact result is an integer
(flat areas, ramps, sums of 5 or 9 equal weights) the last bit of its arithmetic decides the
level. Three ways keep us on the reference's side of the floor, chosen per filter by cost:

- replay the library's arithmetic elementwise in float64 in its order (scipy's gaussian,
  skimage's HSV, Pillow's fixed point, OpenCV's warp and disk filter): the same bits;
- put the weights of linear filters on integer levels on a 2^-16 grid with sums of exactly one
  (zoom blur, ImageMagick's motion blur): every product and partial sum is then a multiple of
  2^-16 below 2^24, exact in float32 in any order or blocking, so flat stays flat; the rounded
  weights move outputs by ~0.003 of a level (at most ~0.04) from the reference;
- otherwise only elementwise ops in a fixed order, never reductions whose order depends on the
  batch (no BLAS on inexact data that is floored afterwards).

Everything is a pure function of its arguments; small matrices are cached per (parameters, device).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from kdbench.util.lazy import lazy

torch = lazy("torch")

GRID_BITS = 16


# ------------------------------------------------------------------------------------ borders
def source_index(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """Source pixel for each of the n + before + after positions of a padded axis.

    nearest    aaa|abcd|ddd  (scipy 'nearest', OpenCV BORDER_REPLICATE, ImageMagick's edge pixels)
    reflect101 dcb|abcd|cba  (OpenCV's default BORDER_REFLECT_101, scipy 'mirror')
    symmetric  cba|abcd|dcb  (scipy/skimage 'reflect')
    Reflections repeat as often as needed, so a kernel wider than the image is handled as
    scipy handles it.
    """
    pos = np.arange(-before, n + after)
    if mode == "nearest":
        return np.clip(pos, 0, n - 1)
    if n == 1:
        return np.zeros_like(pos)
    if mode == "reflect101":
        period = 2 * n - 2
        p = np.mod(pos, period)
        return np.where(p >= n, period - p, p)
    if mode == "symmetric":
        period = 2 * n
        p = np.mod(pos, period)
        return np.where(p >= n, period - 1 - p, p)
    raise ValueError(f"unknown border mode {mode!r}")


# ------------------------------------------------------------------------------- 1-D kernels
def scipy_gaussian_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage.gaussian_filter1d's weights (skimage.filters.gaussian calls it)."""
    if sigma <= 1e-15:  # scipy skips such axes: the filter is the identity
        return np.ones(1)
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    return phi / phi.sum()


def correlation_matrix(n: int, weights: np.ndarray, mode: str) -> np.ndarray:
    """(n, n) float64 matrix M with M @ v == the 1-D correlation of v with `weights` (centred,
    odd length), borders folded in by `mode`. Rows sum to sum(weights)."""
    r = len(weights) // 2
    src = source_index(n, r, r, mode)
    m = np.zeros((n, n))
    for i in range(n):
        for t, w in enumerate(weights):
            m[i, src[i + t]] += w
    return m


def on_grid(matrix: np.ndarray, bits: int = GRID_BITS) -> np.ndarray:
    """Non-negative rows summing to one, moved onto a 2^-bits grid keeping each sum exactly one
    (largest remainders get the spare units), so integer inputs give exact results."""
    m = np.asarray(matrix, dtype=np.float64)
    if (m < 0).any():
        raise ValueError("on_grid takes non-negative weights")
    scale = float(1 << bits)
    target = scale
    scaled = m / m.sum(axis=-1, keepdims=True) * target
    base = np.floor(scaled)
    short = (target - base.sum(axis=-1)).round().astype(int)
    frac = scaled - base
    out = base.reshape(-1, m.shape[-1]).copy()
    for row, (need, fr) in enumerate(zip(short.reshape(-1), frac.reshape(-1, m.shape[-1]))):
        if need > 0:
            out[row, np.argsort(-fr, kind="stable")[:need]] += 1
    return out.reshape(m.shape) / scale


# ------------------------------------------------------------------------ separable filtering
def along_cols(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """x @ m.T over the last axis, as one matrix product."""
    return torch.matmul(x.reshape(-1, x.shape[-1]), m.T).view(*x.shape[:-1], m.shape[0])


def along_rows(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """m @ x over the second-last axis, as one matrix product."""
    t = x.transpose(-1, -2)
    return along_cols(t, m).transpose(-1, -2)


def scipy_gaussian(
    x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0, store=None
) -> torch.Tensor:
    """skimage.filters.gaussian(img, sigma, channel_axis=-1) on float64 (B, C, H, W), bit for bit:
    scipy's correlate1d for a symmetric kernel, out = x0*w0 + sum over j = r..1 of
    (x[-j] + x[+j]) * w[j], along rows first, then columns (each product and sum rounded as in
    scipy's C loop; elementwise, so the same on any batch). Used where the reference floors the
    result (glass blur, gaussian blur): on ramps and flat areas it lands on integers, and only
    the same rounding gives the same bytes. `store` is the image's dtype when not float64:
    scipy computes each line in double and stores it back in that dtype after every axis."""
    w = scipy_gaussian_weights(sigma, truncate).tolist()
    r = len(w) // 2
    if r == 0:
        return x.clone()
    for axis in (-2, -1):
        n = x.shape[axis]
        src = torch.as_tensor(source_index(n, r, r, mode), device=x.device)
        xp = x[..., src, :] if axis == -2 else x[..., src]
        at = (lambda j: xp[..., r + j : r + j + n, :]) if axis == -2 else (lambda j: xp[..., r + j : r + j + n])
        out = torch.mul(at(0), w[r])
        pair = torch.empty_like(out)
        for j in range(r, 0, -1):  # in place: fresh tensors per step would cost more than the arithmetic
            out.add_(torch.add(at(-j), at(j), out=pair).mul_(w[r - j]))
        x = out if store is None else out.to(store).double()
    return x if store is None else x.to(store)


# ---------------------------------------------------------------------- 2-D small kernels
def apply_taps(levels: torch.Tensor, taps: list[tuple[int, int, float]], mode: str, dtype=None) -> torch.Tensor:
    """Correlation with a small 2-D kernel given as (dy, dx, weight) taps, accumulated in the
    taps' order (so every image gets the same arithmetic). With weights on the 2^-16 grid and
    integer levels, float32 is exact."""
    dtype = dtype or torch.float32
    r = max(max(abs(dy), abs(dx)) for dy, dx, _ in taps)
    padded = pad(levels.to(dtype), r, mode)
    h, w = levels.shape[-2:]
    out = torch.zeros(levels.shape, dtype=dtype, device=levels.device)
    for dy, dx, wt in taps:
        out.add_(padded[..., r + dy : r + dy + h, r + dx : r + dx + w], alpha=wt)
    return out


def pad(x: torch.Tensor, r: int, mode: str) -> torch.Tensor:
    """Pad the last two axes by r with one of source_index's modes (by index, so any mode and
    any width work)."""
    h, w = x.shape[-2:]
    rows = torch.as_tensor(source_index(h, r, r, mode), device=x.device)
    cols = torch.as_tensor(source_index(w, r, r, mode), device=x.device)
    return x[..., rows[:, None], cols[None, :]]  # one gather; index_select on trailing axes is ~20x slower on CPU


# ------------------------------------------------------------------------- OpenCV disk kernel
def opencv_gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel(ksize, sigma, CV_32F) for sigma > 0."""
    x = np.arange(ksize) - (ksize - 1) * 0.5
    t = np.exp((-0.5 / (sigma * sigma)) * x * x).astype(np.float32)
    s = 1.0 / float(np.sum(t, dtype=np.float64))
    return (t.astype(np.float64) * s).astype(np.float32)


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """make_cifar_c.py's `disk`: an aliased disk on a 17x17 grid (radius <= 8), normalised, then
    cv2.GaussianBlur with a 3x3 kernel of sigma alias_blur (reflect-101 borders), float32.
    Returned cropped to its non-zero support."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 9), 3
    else:
        grid, ksize = np.arange(-radius, radius + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    disk = np.array((xx**2 + yy**2) <= radius**2, dtype=np.float32)
    disk /= np.sum(disk)
    g = opencv_gaussian_kernel(ksize, alias_blur).astype(np.float64)
    n = disk.shape[0]
    rows = correlation_matrix(n, g, "reflect101")
    out = (rows @ disk.astype(np.float64) @ rows.T).astype(np.float32)
    nz = np.argwhere(out != 0)
    (y0, x0), (y1, x1) = nz.min(0), nz.max(0)
    c = n // 2
    r = int(max(c - y0, y1 - c, c - x0, x1 - c))
    return out[c - r : c + r + 1, c - r : c + r + 1]


# ----------------------------------------------------------------------- scipy zoom (order 1)
def scipy_zoom_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix of scipy.ndimage.zoom(order=1, grid_mode=False):
    output o samples input coordinate o * (n_in - 1) / (n_out - 1)."""
    m = np.zeros((n_out, n_in))
    ratio = (n_in - 1) / (n_out - 1) if n_out > 1 else 1.0
    for o in range(n_out):
        c = o * ratio
        i0 = min(int(math.floor(c)), n_in - 1)
        f = c - i0
        m[o, i0] += 1.0 - f
        if f > 0:
            m[o, i0 + 1] += f
    return m


def clipped_zoom_matrix(size: int, zoom: float) -> np.ndarray:
    """(size, size) matrix of make_cifar_c.py's clipped_zoom along one axis: crop the centre
    ceil(size / zoom), scipy-zoom it by `zoom` (output length round(crop * zoom)), trim back to
    `size` from the centre."""
    ch = int(np.ceil(size / zoom))
    top = (size - ch) // 2
    n_out = int(round(ch * zoom))  # scipy's output shape
    trim = (n_out - size) // 2
    z = scipy_zoom_matrix(ch, n_out)[trim : trim + size]
    m = np.zeros((size, size))
    m[:, top : top + ch] = z
    return m


# ---------------------------------------------------------------- ImageMagick motion blur
def imagemagick_motion_weights(radius: float, sigma: float) -> np.ndarray:
    """MotionBlurImage's one-sided kernel: width 2*ceil(radius)+1 (GetOptimalKernelWidth1D with
    a radius given), weights exp(-i^2 / (2 sigma^2)) for i = 0..width-1, normalised."""
    width = int(2.0 * math.ceil(radius) + 1.0)
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i * i) / (2.0 * sigma * sigma)) / (math.sqrt(2.0 * math.pi) * sigma)
    return k / k.sum()


def imagemagick_motion_offsets(width: int, angles_deg) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) integer offsets (len(angles), width) of MotionBlurImage's taps: tap i reads the
    pixel at (x + dx_i, y + dy_i), dx_i = ceil(i*cos(a) - 0.5), dy_i = ceil(i*sin(a) - 0.5),
    computed as ImageMagick does (point = width*(sin, cos), divided by its hypot).

    The trigonometry runs in Python's math, image by image, because vectorised sin/cos differ
    in the last bit between vector bodies and scalar tails, which would make an image's taps
    depend on its position in the batch."""
    angles = [float(a) for a in np.asarray(angles_deg, dtype=np.float64).reshape(-1)]
    px = np.empty(len(angles))
    py = np.empty(len(angles))
    hyp = np.empty(len(angles))
    for j, a in enumerate(angles):
        rad = math.pi * a / 180.0  # DegreesToRadians: MagickPI*degrees/180.0
        px[j] = width * math.sin(rad)
        py[j] = width * math.cos(rad)
        hyp[j] = math.hypot(px[j], py[j])
    i = np.arange(width, dtype=np.float64)[None, :]
    dx = np.ceil((i * py[:, None]) / hyp[:, None] - 0.5).astype(np.int64)
    dy = np.ceil((i * px[:, None]) / hyp[:, None] - 0.5).astype(np.int64)
    return dx, dy


def shifted_sum(
    levels: torch.Tensor, weights: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, order: torch.Tensor | None = None
) -> torch.Tensor:
    """sum_i weights[i] * levels[b, :, y + dy[b, i], x + dx[b, i]] with edge pixels repeated past
    the border (ImageMagick's default virtual pixels), for per-image integer offsets.

    Each tap adds whole shifted 32x32 windows. Sorted by `order` (the blur angle), images that
    share a tap's offset sit next to each other, so every tap is a few slice-adds over runs of
    images: no gathers, no per-pixel indices. Exact on integer levels with 2^-16 weights, so
    neither the order of images nor of taps changes a bit."""
    b, c, h, w = levels.shape
    p = int(max(dx.abs().max().item(), dy.abs().max().item(), 0)) if dx.numel() else 0
    perm = torch.argsort(order, stable=True) if order is not None else torch.arange(b, device=levels.device)
    padded = pad(levels.float()[perm], p, "nearest")
    dxs, dys = dx[perm].cpu(), dy[perm].cpu()
    acc = torch.zeros((b, c, h, w), dtype=torch.float32, device=levels.device)
    for i, wt in enumerate(weights.tolist()):
        key = dys[:, i] * (4 * p + 4) + dxs[:, i]
        cuts = (torch.nonzero(key[1:] != key[:-1]).squeeze(1) + 1).tolist()
        for s, e in zip([0] + cuts, cuts + [b]):
            oy, ox = p + int(dys[s, i]), p + int(dxs[s, i])
            acc[s:e].add_(padded[s:e, :, oy : oy + h, ox : ox + w], alpha=wt)
    out = torch.empty_like(acc)
    out[perm] = acc
    return out


def imagemagick_quantize(levels_sum: torch.Tensor) -> torch.Tensor:
    """An 8-bit PNG read into Q16 ImageMagick, blurred, written back at 8 bits: the sum (in 8-bit
    levels) scaled by 257, ClampToQuantum (round half up, clamp), ScaleQuantumToChar. uint8."""
    q = torch.floor(levels_sum.double() * 257.0 + 0.5).clamp_(0, 65535).to(torch.int64)
    q = q + 128
    return ((q - (q >> 8)) >> 8).to(torch.uint8)


# ----------------------------------------------------------------------------- Pillow resize
def pillow_coefficients(in_size: int, out_size: int, support: float = 0.5) -> np.ndarray:
    """(out_size, in_size) int64 fixed-point weights of Pillow's 8-bit resampling
    (precompute_coeffs + normalize_coeffs_8bpc, PRECISION_BITS = 22) for the BOX filter."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    sup = support * filterscale
    m = np.zeros((out_size, in_size), dtype=np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - sup + 0.5), 0)
        xmax = min(int(center + sup + 0.5), in_size) - xmin
        ws = []
        for x in range(xmax):
            arg = (x + xmin - center + 0.5) * ss
            ws.append(1.0 if -0.5 < arg <= 0.5 else 0.0)  # box_filter
        total = sum(ws)
        for x, wv in enumerate(ws):
            v = wv / total if total != 0.0 else wv
            m[xx, xmin + x] = int(0.5 + v * (1 << 22)) if v >= 0 else int(-0.5 + v * (1 << 22))
    return m


@functools.lru_cache(maxsize=None)
def _pillow_pass(in_size: int, out_size: int, device: str):
    """One Pillow pass as ("pairs", first, second) when every output pixel takes one input pixel
    (weight 2^22) or the mean of two (2^21 each), as BOX does for the sizes here: then the pass is
    (a + b + 1) >> 1 in integers, with a = b for single pixels. Else ("matrix", fractions of 2^22
    in float64, which holds Pillow's integer sums exactly)."""
    k = pillow_coefficients(in_size, out_size)
    first, second = [], []
    for row in k:
        nz = np.flatnonzero(row)
        if len(nz) == 1 and row[nz[0]] == 1 << 22:
            first.append(nz[0]), second.append(nz[0])
        elif len(nz) == 2 and (row[nz] == 1 << 21).all():
            first.append(nz[0]), second.append(nz[1])
        else:
            return "matrix", torch.tensor(k / float(1 << 22), dtype=torch.float64, device=device)
    return "pairs", torch.tensor(first, device=device), torch.tensor(second, device=device)


def pillow_box_resize(levels: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """PIL.Image.resize((out_w, out_h), Image.BOX) on integer levels (B, C, H, W): the horizontal
    pass, rounded to uint8, then the vertical pass, rounded (Pillow's fixed point: each output is
    floor((sum of pixel * weight + 2^21) / 2^22)). Returns int16 levels."""
    x = levels.to(torch.int16)
    h, w = x.shape[-2:]
    for axis, n_in, n_out in ((-1, w, out_w), (-2, h, out_h)):
        if n_in == n_out:
            continue
        kind, *how = _pillow_pass(n_in, n_out, str(x.device))
        if kind == "pairs":
            a, b = how
            pick = (lambda i: x[..., i]) if axis == -1 else (lambda i: x[..., i, :])
            x = (pick(a) + pick(b) + 1) >> 1
        else:
            m = how[0]
            acc = along_cols(x.double(), m) if axis == -1 else along_rows(x.double(), m)
            x = acc.add_(0.5).floor_().to(torch.int16)
    return x


def pillow_box_down_up(levels: torch.Tensor, small: int) -> torch.Tensor:
    """resize((small, small), BOX) then resize back, as uint8. When both down passes are "pairs"
    and the up passes single-pixel copies (BOX upsampling picks one pixel), each output is
    ((a + b + 1) >> 1 + (c + d + 1) >> 1 + 1) >> 1 of four fixed source pixels: four row gathers
    on a pixels-first layout, no per-element index arithmetic."""
    b, c, h, w = levels.shape
    dev = str(levels.device)
    passes = [
        _pillow_pass(w, small, dev),
        _pillow_pass(h, small, dev),
        _pillow_pass(small, w, dev),
        _pillow_pass(small, h, dev),
    ]
    if not all(p[0] == "pairs" for p in passes) or any(not torch.equal(p[1], p[2]) for p in passes[2:]):
        return pillow_box_resize(pillow_box_resize(levels, small, small), h, w).to(torch.uint8)
    (_, ha, hb), (_, vc, vd), (_, ux, _), (_, uy, _) = passes
    cols_a, cols_b = ha[ux], hb[ux]  # output column -> the two source columns
    rows_c, rows_d = vc[uy], vd[uy]
    flat = levels.to(torch.int16).reshape(b * c, h * w).T.contiguous()  # pixels first: gathers copy whole rows

    def at(rows, cols):
        return flat.index_select(0, (rows[:, None] * w + cols[None, :]).reshape(-1))

    top = (at(rows_c, cols_a) + at(rows_c, cols_b) + 1) >> 1
    bottom = (at(rows_d, cols_a) + at(rows_d, cols_b) + 1) >> 1
    out = (top + bottom + 1) >> 1
    return out.T.reshape(b, c, h, w).to(torch.uint8)


# -------------------------------------------------------------------------- bilinear sampling
def bilinear(
    table: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, wy: torch.Tensor, wx: torch.Tensor, mode: str
) -> torch.Tensor:
    """Bilinear samples of `table` (B, C, H, W) at integer corners (rows, cols) (B, H', W') plus
    fractions (wy, wx), float32; neighbours outside the image come from `mode`'s reflection.

    Interpolated as lerp(lerp(a, b, wx), lerp(c, d, wx), wy): a flat neighbourhood gives back
    exactly its value, and with fractions on a 1/32 grid over integer levels every step is exact."""
    b, c, h, w = table.shape
    dev = table.device
    r = int(max(-rows.min().item(), rows.max().item() + 2 - h, -cols.min().item(), cols.max().item() + 2 - w, 0))
    ri = torch.as_tensor(source_index(h, r, r + 1, mode), device=dev)
    ci = torch.as_tensor(source_index(w, r, r + 1, mode), device=dev)
    base = (torch.arange(b, device=dev) * (h * w)).view(b, 1, 1)
    y0 = base + ri[rows + r] * w
    y1 = base + ri[rows + 1 + r] * w
    x0, x1 = ci[cols + r], ci[cols + 1 + r]
    flat = table.permute(0, 2, 3, 1).contiguous().view(-1, c).float()

    def at(yy, xx):
        return flat.index_select(0, (yy + xx).view(-1))

    fx = wx.to(torch.float32).reshape(-1, 1)
    fy = wy.to(torch.float32).reshape(-1, 1)
    top = torch.lerp(at(y0, x0), at(y0, x1), fx)
    bottom = torch.lerp(at(y1, x0), at(y1, x1), fx)
    out = torch.lerp(top, bottom, fy)
    return out.view(b, *rows.shape[-2:], c).permute(0, 3, 1, 2)
