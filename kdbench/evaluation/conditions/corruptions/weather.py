"""Weather: snow, frost, fog and spatter."""

from __future__ import annotations

import functools

import numpy as np

from kdbench.evaluation.conditions.corruptions import corruption, textures
from kdbench.evaluation.conditions.corruptions.blur import motion_blur_levels
from kdbench.evaluation.conditions.corruptions.core import Draw, to_uint8
from kdbench.evaluation.conditions.corruptions.cvops import (
    box3,
    canny,
    chamfer_distance,
    equalize_hist,
    filter3_saturate,
)
from kdbench.evaluation.conditions.corruptions.kernels import clipped_zoom_matrix, scipy_gaussian
from kdbench.util.lazy import lazy

torch = lazy("torch")


def _x32(levels):
    return levels.float() / 255.0  # np.array(x, dtype=np.float32) / 255.


def _gray32(x):
    # cv2.cvtColor(x, COLOR_RGB2GRAY) on float32
    return x[:, 0] * 0.299 + x[:, 1] * 0.587 + x[:, 2] * 0.114


# ----------------------------------------------------------------------------------------- snow
@functools.lru_cache(maxsize=None)
def _zoom(side: int, zoom: float, device: str) -> torch.Tensor | None:
    m = clipped_zoom_matrix(side, zoom)
    return None if np.array_equal(m, np.eye(side)) else torch.tensor(m, dtype=torch.float64, device=device)


@corruption(
    "snow",
    "weather",
    {
        32: [
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        ],
        64: [
            (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
        ],
        224: [
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ],
    },
    draws=lambda c, side: (Draw("layer", (side, side), "normal"), Draw("angle", (1,))),
)
def snow(levels, c, d):
    """Snow: a thresholded, motion-blurred noise layer over a lifted image.

    A normal(loc, scale) layer, clipped-zoomed, thresholded, motion-blurred by ImageMagick at an
    angle in [-135, -45], added twice (once rotated by 180 degrees) to the image, whose darker
    parts are first lifted towards 1.5 * grey + 0.5."""
    loc, scale, zoom, threshold, radius, sigma, blend = c
    layer = loc + scale * d["layer"]  # np.random.normal(loc, scale)
    z = _zoom(int(levels.shape[-1]), float(zoom), str(levels.device))
    if z is not None:
        layer = torch.matmul(torch.matmul(z, layer), z.T)
    layer = torch.where(layer < threshold, 0.0, layer)
    flakes = torch.floor(layer.clamp(0, 1) * 255).unsqueeze(1)  # the 8-bit 'L' image handed to Wand
    angle = -135.0 + 90.0 * d["angle"][:, 0]  # np.random.uniform(-135, -45)
    flakes = motion_blur_levels(flakes, radius, sigma, angle).double() / 255.0
    x = _x32(levels)
    lifted = torch.maximum(x, (_gray32(x) * 1.5 + 0.5).unsqueeze(1))
    x = blend * x + (1 - blend) * lifted
    return to_uint8(x.double() + flakes + torch.flip(flakes, dims=(-2, -1)))


# ---------------------------------------------------------------------------------------- frost
@corruption(
    "frost",
    "weather",
    {  # (image weight, texture weight, the textures' scale)
        32: [(1, 0.2, 0.2), (1, 0.3, 0.2), (0.9, 0.4, 0.2), (0.85, 0.4, 0.2), (0.75, 0.45, 0.2)],
        64: [(1, 0.3, 0.3), (0.9, 0.4, 0.3), (0.8, 0.45, 0.3), (0.75, 0.5, 0.3), (0.7, 0.55, 0.3)],
        224: [(1, 0.4, 1), (0.8, 0.6, 1), (0.7, 0.7, 1), (0.65, 0.7, 1), (0.6, 0.75, 1)],
    },
    draws=lambda c, side: (Draw("pick", (3,)),),
)
def frost(levels, c, d):
    """c[0] * image + c[1] * a random crop of one of the five frost textures (at scale c[2]), clipped."""
    side = int(levels.shape[-1])
    if side > textures.largest_crop(c[2]):
        raise ValueError(f"frost: the textures of this parameter set are smaller than {side} px")
    bank, sizes = textures.bank(c[2], str(levels.device))
    u = d["pick"]
    which = torch.floor(u[:, 0] * textures.COUNT).to(torch.int64)  # np.random.randint(5)
    hw = sizes[which]
    top = torch.floor(u[:, 1] * (hw[:, 0] - side).double()).to(torch.int64)  # randint(0, h - side)
    left = torch.floor(u[:, 2] * (hw[:, 1] - side).double()).to(torch.int64)
    r = torch.arange(side, device=levels.device)
    crop = bank[which[:, None, None], (top[:, None] + r)[:, :, None], (left[:, None] + r)[:, None, :]]
    texture = crop.permute(0, 3, 1, 2).double()
    out = c[0] * levels.double() + c[1] * texture  # float64, as numpy does it
    return torch.floor(out.clamp(0, 255)).to(torch.uint8)


# ------------------------------------------------------------------------------------------ fog
def plasma_size(side: int) -> int:
    """The height map's side: a power of two, cropped to the image (32, 64 and 256 in the
    reference's three scripts)."""
    return 1 << (side - 1).bit_length()


def plasma_draws(size: int) -> int:
    """Uniforms one map consumes: 3 (size / step)^2 per halving step (1023 for a 32x32 map)."""
    return 3 * sum(4**k for k in range(size.bit_length() - 1))


def plasma_fractal(u: torch.Tensor, wibble_decay: float, size: int) -> torch.Tensor:
    """The reference's diamond-square height map (B, size, size) in [0, 1], float64, consuming
    the uniforms u (B, plasma_draws(size)) in its order (squares, then the two diamond sets, per
    step, each block row-major)."""
    b = u.shape[0]
    m = torch.zeros((b, size, size), dtype=torch.float64, device=u.device)
    step = size
    wibble = 100.0
    used = 0

    def wibbled_mean(total):
        nonlocal used
        n = total.shape[1] * total.shape[2]
        draw = u[:, used : used + n].view_as(total)
        used += n
        return total / 4 + wibble * (-wibble + (2 * wibble) * draw)  # wibble * np.random.uniform(-wibble, wibble)

    while step >= 2:
        half = step // 2
        corners = m[:, 0:size:step, 0:size:step]
        sq = corners + torch.roll(corners, -1, dims=1)
        sq = sq + torch.roll(sq, -1, dims=2)
        m[:, half:size:step, half:size:step] = wibbled_mean(sq)
        dr = m[:, half:size:step, half:size:step]
        ul = m[:, 0:size:step, 0:size:step]
        lt = (dr + torch.roll(dr, 1, dims=1)) + (ul + torch.roll(ul, -1, dims=2))
        m[:, 0:size:step, half:size:step] = wibbled_mean(lt)
        tt = (dr + torch.roll(dr, 1, dims=2)) + (ul + torch.roll(ul, -1, dims=1))
        m[:, half:size:step, 0:size:step] = wibbled_mean(tt)
        step //= 2
        wibble /= wibble_decay
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True)


@corruption(
    "fog",
    "weather",
    {
        32: [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
        64: [(0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)],
        224: [(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)],
    },
    draws=lambda c, side: (Draw("plasma", (plasma_draws(plasma_size(side)),)),),
)
def fog(levels, c, d):
    """Fog: adds c[0] times a diamond-square plasma map (wibble decay c[1]).

    Then rescales so the image's maximum keeps its value: x * max / (max + c[0])."""
    x = levels.double() / 255.0
    max_val = x.amax(dim=(1, 2, 3), keepdim=True)
    side = x.shape[-1]
    x = x + c[0] * plasma_fractal(d["plasma"], c[1], plasma_size(side))[:, :side, :side].unsqueeze(1)
    return to_uint8(x * max_val / (max_val + c[0]))


# -------------------------------------------------------------------------------------- spatter
WATER = (175 / 255.0, 238 / 255.0, 238 / 255.0)  # the reference calls it pale turquoise in BGR; it lands on R, G, B
MUD = (63 / 255.0, 42 / 255.0, 20 / 255.0)
EMBOSS = ((-2, -1, 0), (-1, 1, 1), (0, 1, 2))


@corruption(
    "spatter",
    "weather",
    {
        32: [
            (0.62, 0.1, 0.7, 0.7, 0.5, 0),
            (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1),
        ],
        64: [
            (0.62, 0.1, 0.7, 0.7, 0.6, 0),
            (0.65, 0.1, 0.8, 0.7, 0.6, 0),
            (0.65, 0.3, 1, 0.69, 0.6, 0),
            (0.65, 0.1, 0.7, 0.68, 0.6, 1),
            (0.65, 0.1, 0.5, 0.67, 0.6, 1),
        ],
        224: [
            (0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1),
        ],
    },
    draws=lambda c, side: (Draw("liquid", (side, side), "normal"),),
)
def spatter(levels, c, d):
    """Water (severities 1-3) or mud (4-5) splashes from a smoothed, thresholded noise layer.

    Water tints by the embossed, equalised distance to the layer's Canny edges; mud paints
    brown where a blurred mask of the layer exceeds 0.8."""
    loc, scale, sigma, threshold, intensity, mud = c
    liquid = scipy_gaussian((loc + scale * d["liquid"]).unsqueeze(1), sigma).squeeze(1)  # skimage's gaussian
    liquid = torch.where(liquid < threshold, 0.0, liquid)
    x = _x32(levels)
    if not mud:
        layer = torch.remainder(torch.floor(liquid * 255), 256).to(torch.int64)  # .astype(np.uint8) wraps above 255
        edges = canny(layer, 50, 150)
        dist = chamfer_distance(edges).clamp(max=20 << 16)  # threshold(dist, 20, 20, THRESH_TRUNC)
        blurred = (box3(dist).double() / 65536) * (1.0 / 9.0)  # cv2.blur sums in double, scales by 1/9
        dist = torch.floor(blurred.float()).to(torch.int64)  # .astype(np.uint8)
        dist = equalize_hist(dist)
        dist = filter3_saturate(dist, EMBOSS)
        dist = torch.div(box3(dist) + 4, 9, rounding_mode="floor")  # cv2.blur on uint8 rounds
        m = layer.float() * dist.float()
        top = m.amax(dim=(1, 2), keepdim=True)
        m = (m / top) * intensity
        color = torch.tensor(WATER, dtype=torch.float32, device=levels.device).view(1, 3, 1, 1)
        out = to_uint8(x + m.unsqueeze(1) * color)
        # A layer with no liquid at all divides 0 by 0: NaN everywhere, which np.uint8 turns into 0.
        return torch.where(top.unsqueeze(1) > 0, out, torch.zeros_like(out))
    mask = (liquid > threshold).to(torch.float32).unsqueeze(1)
    m = scipy_gaussian(mask.double(), intensity, store=torch.float32)  # the mask is float32 there
    m = torch.where(m < 0.8, 0.0, m)
    color = torch.tensor(MUD, dtype=torch.float32, device=levels.device).view(1, 3, 1, 1) * m
    return to_uint8(x * (1 - m) + color)
