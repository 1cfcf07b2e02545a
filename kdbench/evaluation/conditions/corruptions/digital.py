"""Digital: brightness, contrast, saturate, elastic transform, pixelate and JPEG."""

from __future__ import annotations

import functools
import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from kdbench.evaluation.conditions.corruptions import corruption
from kdbench.evaluation.conditions.corruptions.core import Draw, levels_to_uint8, to_uint8
from kdbench.evaluation.conditions.corruptions.kernels import (
    bilinear,
    correlation_matrix,
    pillow_box_down_up,
    scipy_gaussian_weights,
)
from kdbench.util.lazy import lazy

torch = lazy("torch")


def _x01(levels):
    return levels.double() / 255.0


# ----------------------------------------------------------------------------------- HSV ones
def rgb2hsv(x: torch.Tensor) -> torch.Tensor:
    """skimage.color.rgb2hsv on (B, 3, H, W) float64, operation for operation (so the floor after
    the round trip lands where skimage's does): ties for the maximum go to the later channel."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v = x.amax(dim=1)
    delta = v - x.amin(dim=1)
    flat = delta == 0
    safe = torch.where(flat, 1.0, delta)
    s = torch.where(flat, 0.0, delta / torch.where(v == 0, 1.0, v))
    h = (g - b) / safe
    h = torch.where(g == v, 2.0 + (b - r) / safe, h)
    h = torch.where(b == v, 4.0 + (r - g) / safe, h)
    h = torch.remainder(h / 6.0, 1.0)
    h = torch.where(flat, 0.0, h)
    return torch.stack([h, s, v], dim=1)


def hsv2rgb(hsv: torch.Tensor) -> torch.Tensor:
    """skimage.color.hsv2rgb on (B, 3, H, W) float64."""
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    hi = torch.floor(h * 6)
    f = h * 6 - hi
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    sector = torch.remainder(hi.to(torch.int64), 6)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.empty_like(hsv)
    for ch in range(3):
        pick = table[0][ch]
        for k in range(1, 6):
            pick = torch.where(sector == k, table[k][ch], pick)
        out[:, ch] = pick
    return out


@corruption(
    "brightness",
    "digital",
    {32: [0.05, 0.1, 0.15, 0.2, 0.3], 64: [0.1, 0.2, 0.3, 0.4, 0.5], 224: [0.1, 0.2, 0.3, 0.4, 0.5]},
)
def brightness(levels, c, d):
    """HSV value + c, clipped to 1 (skimage's colour conversions)."""
    hsv = rgb2hsv(_x01(levels))
    hsv[:, 2] = (hsv[:, 2] + c).clamp(0, 1)
    return to_uint8(hsv2rgb(hsv))


@corruption(
    "saturate",
    "digital",
    {
        32: [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
        64: [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)],
        224: [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],
    },
)
def saturate(levels, c, d):
    """HSV saturation * c[0] + c[1], clipped to [0, 1] (skimage's colour conversions)."""
    hsv = rgb2hsv(_x01(levels))
    hsv[:, 1] = (hsv[:, 1] * c[0] + c[1]).clamp(0, 1)
    return to_uint8(hsv2rgb(hsv))


@corruption(
    "contrast",
    "digital",
    {32: [0.75, 0.5, 0.4, 0.3, 0.15], 64: [0.4, 0.3, 0.2, 0.1, 0.05], 224: [0.4, 0.3, 0.2, 0.1, 0.05]},
)
def contrast(levels, c, d):
    """(x - mean) * c + mean, with each image's per-channel mean."""
    x = _x01(levels)
    # np.mean(x, axis=(0, 1)) on an HWC image adds the pixels one after another (no pairwise
    # summation across non-contiguous axes): a running sum gives its bits, so flat images stay flat.
    b = x.shape[0]
    means = (torch.cumsum(x.reshape(b, 3, -1), dim=2)[..., -1:] / x[0, 0].numel()).view(b, 3, 1, 1)
    return to_uint8((x - means) * c + means)


# ------------------------------------------------------------------------------------- elastic
ELASTIC_32 = [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)]
ELASTIC_64 = [(0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)]
ELASTIC_224 = [(2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)]


@functools.lru_cache(maxsize=None)
def _displacement_smoothing(side: int, sigma: float, device: str) -> torch.Tensor:
    return torch.tensor(
        correlation_matrix(side, scipy_gaussian_weights(sigma, truncate=3.0), "symmetric"),
        dtype=torch.float64,
        device=device,
    )


def _elastic_draws(c, side):
    alpha, sigma, jitter = c
    affine = (Draw("affine", (3, 2)),)
    return affine if alpha == 0 else affine + (Draw("dx", (side, side)), Draw("dy", (side, side)))


def opencv_affine_sources(u: torch.Tensor, jitter: float, size: int):
    """Where cv2.warpAffine(image, M, borderMode=BORDER_REFLECT_101) samples each output pixel, M
    mapping the reference's three points to themselves plus uniform(-jitter, jitter) noise:
    integer corners (rows, cols) and fractions on OpenCV's 1/32 grid (INTER_BITS = 5)."""
    center, square = size // 2, size // 3
    p1 = np.array(
        [[center + square, center + square], [center + square, center - square], [center - square, center - square]],
        dtype=np.float32,
    )
    noise = (-jitter + (2 * jitter) * u).to(torch.float32)  # uniform(...).astype(np.float32)
    p2 = (torch.tensor(p1, device=u.device) + noise).double()  # float32 sums, as numpy adds them
    # getAffineTransform: M maps p1 to p2. p1 is fixed, so M = P2 @ inv(P1) with P = [x; y; 1];
    # written out so each image's arithmetic is the same whatever the batch.
    pinv = torch.tensor(np.linalg.inv(np.vstack([p1.T.astype(np.float64), np.ones(3)])), device=u.device)
    m = [[sum(p2[:, k, r] * pinv[k, col] for k in range(3)) for col in range(3)] for r in range(2)]
    # invertAffineTransform
    det = m[0][0] * m[1][1] - m[0][1] * m[1][0]
    det = torch.where(det != 0, 1.0 / det, 0.0)
    a11, a22, a12, a21 = m[1][1] * det, m[0][0] * det, -m[0][1] * det, -m[1][0] * det
    b1 = -a11 * m[0][2] - a12 * m[1][2]
    b2 = -a21 * m[0][2] - a22 * m[1][2]
    inv = [[a11, a12, b1], [a21, a22, b2]]
    # WarpAffineInvoker's fixed point: AB_BITS = 10, rounded (cvRound: half to even), +16, >> 5.
    xs = torch.arange(size, dtype=torch.float64, device=u.device).view(1, 1, size)
    ys = torch.arange(size, dtype=torch.float64, device=u.device).view(1, size, 1)
    col = lambda k: inv[0][k].view(-1, 1, 1)  # noqa: E731
    row = lambda k: inv[1][k].view(-1, 1, 1)  # noqa: E731
    x_fix = (torch.round((col(1) * ys + col(2)) * 1024) + 16).long() + torch.round(col(0) * xs * 1024).long()
    y_fix = (torch.round((row(1) * ys + row(2)) * 1024) + 16).long() + torch.round(row(0) * xs * 1024).long()
    x_fix, y_fix = x_fix >> 5, y_fix >> 5
    return y_fix >> 5, x_fix >> 5, (y_fix & 31).double() / 32, (x_fix & 31).double() / 32


@corruption(
    "elastic_transform",
    "digital",
    {  # (alpha, sigma, jitter) in pixels: the scripts write them as multiples of their side
        32: [(32 * a, 32 * s, 32 * j) for a, s, j in ELASTIC_32],
        64: [(64 * a, 64 * s, 64 * j) for a, s, j in ELASTIC_64],
        # "244 should have been 224, but ultimately nothing is incorrect" (make_imagenet_c.py)
        224: [(244 * a, 244 * s, 244 * j) for a, s, j in ELASTIC_224],
    },
    draws=_elastic_draws,
)
def elastic_transform(levels, c, d):
    """A random affine warp (jitter c[2]), then a smooth random displacement (alpha c[0], sigma c[1]).

    The displacement is smoothed uniform noise, sampled bilinearly with symmetric borders; the
    warp follows OpenCV 3's fixed point (1/32 pixel), as the 2018 release was made with it."""
    alpha, sigma, jitter = c
    side = int(levels.shape[-1])
    rows, cols, fy, fx = opencv_affine_sources(d["affine"], jitter, side)
    warped = bilinear(levels, rows, cols, fy, fx, "reflect101")  # exact: 1/32 fractions of integer levels
    if alpha == 0:  # scipy's gaussian_filter skips sigma 0: no displacement
        return levels_to_uint8(warped)
    g = _displacement_smoothing(side, float(sigma), str(levels.device))

    def field(u):  # (gaussian(uniform(-1, 1), sigma, mode='reflect', truncate=3) * alpha).astype(float32)
        return (torch.matmul(torch.matmul(g, -1.0 + 2.0 * u), g.T) * alpha).float()

    ys = torch.arange(side, device=levels.device).view(1, side, 1) + field(d["dy"]).double()
    xs = torch.arange(side, device=levels.device).view(1, 1, side) + field(d["dx"]).double()
    r0, c0 = torch.floor(ys), torch.floor(xs)
    # map_coordinates(order=1, mode='reflect')
    out = bilinear(warped, r0.long(), c0.long(), ys - r0, xs - c0, "symmetric")
    return levels_to_uint8(out)


# ------------------------------------------------------------------------------------ pixelate
@corruption(
    "pixelate",
    "digital",
    {32: [0.95, 0.9, 0.85, 0.75, 0.65], 64: [0.9, 0.8, 0.7, 0.6, 0.5], 224: [0.6, 0.5, 0.4, 0.3, 0.25]},
)
def pixelate(levels, c, d):
    """PIL BOX resize to int(side * c) and back to the side."""
    return pillow_box_down_up(levels, int(levels.shape[-1] * c))


# ---------------------------------------------------------------------------------------- JPEG
def _pil_jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    out = np.empty_like(images)
    for i, a in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        out[i] = np.asarray(Image.open(buf))
    return out


def _torchvision_jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    from torchvision.io import decode_jpeg, encode_jpeg

    t = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    decoded = decode_jpeg(encode_jpeg(list(t), quality=quality))
    return torch.stack(decoded).permute(0, 2, 3, 1).numpy()


@functools.lru_cache(maxsize=None)
def jpeg_codec():
    """torchvision's libjpeg-turbo round trip when it gives Pillow's bytes on a probe photograph
    at every quality used (it does with the wheels we test; it is ~3x faster, as it skips
    Pillow's per-image Python overhead); else Pillow itself, as the reference calls it."""
    import warnings

    # torchvision 0.29 deprecates its codecs (for torchcodec) and warns on every call; we probe
    # them against Pillow below and fall back to it, so the warning says nothing to act on.
    warnings.filterwarnings(
        "ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning
    )
    try:
        rng = np.random.default_rng(0)
        ramp = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3)
        probe = np.clip(ramp + rng.normal(0, 25, ramp.shape), 0, 255).astype(np.uint8)[None]
        for q in sorted({q for qualities in JPEG_QUALITIES.values() for q in qualities}):
            if not np.array_equal(_torchvision_jpeg(probe, q), _pil_jpeg(probe, q)):
                return _pil_jpeg
        return _torchvision_jpeg
    except Exception:
        return _pil_jpeg


def jpeg_round_trip(images: np.ndarray, quality: int, workers: int | None = None) -> np.ndarray:
    """uint8 (N, H, W, 3) through a JPEG encode/decode at `quality`, in parallel chunks."""
    codec = jpeg_codec()
    workers = workers or min(8, os.cpu_count() or 1)
    if len(images) < 64 or workers == 1:
        return codec(images, quality)
    chunks = np.array_split(images, workers * 2)
    with ThreadPoolExecutor(workers) as pool:  # both codecs release the GIL while coding
        return np.concatenate(list(pool.map(lambda a: codec(a, quality), chunks)))


JPEG_QUALITIES = {32: [80, 65, 58, 50, 40], 64: [65, 58, 50, 40, 25], 224: [25, 18, 15, 10, 7]}


@corruption("jpeg_compression", "digital", JPEG_QUALITIES)
def jpeg_compression(levels, c, d):
    """PIL JPEG save at quality c (4:2:0), then decode."""
    arr = levels.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return torch.from_numpy(jpeg_round_trip(arr, int(c))).permute(0, 3, 1, 2).contiguous().to(levels.device)
