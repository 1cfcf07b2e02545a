"""The OpenCV operations of `spatter`'s water mode, batched in torch on uint8-valued images
(B, H, W): Canny, the 5x5 chamfer distance transform, box blurs, histogram equalisation and a
saturating 3x3 filter. Each follows OpenCV's integer/float arithmetic closely enough to give its
bytes (checked against cv2 when it is installed).
"""

from __future__ import annotations

from kdbench.evaluation.conditions.corruptions.kernels import pad
from kdbench.util.lazy import lazy

torch = lazy("torch")
F = lazy("torch.nn.functional")

CANNY_SHIFT = 15
TG22 = int(0.4142135623730950488016887242097 * (1 << CANNY_SHIFT) + 0.5)


def _shift(x: torch.Tensor, dy: int, dx: int, fill=0) -> torch.Tensor:
    """x[..., y + dy, x + dx] with `fill` outside."""
    h, w = x.shape[-2:]
    p = (
        F.pad(x, (1, 1, 1, 1), value=fill)
        if x.dtype.is_floating_point
        else F.pad(x.float(), (1, 1, 1, 1), value=fill).to(x.dtype)
    )
    return p[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def canny(img: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """cv2.Canny(img, low, high) (aperture 3, L1 gradient) -> bool edges (B, H, W)."""
    x = img.to(torch.int64)
    p = pad(x.unsqueeze(1).double(), 1, "nearest").squeeze(1).to(torch.int64)  # Sobel: BORDER_REPLICATE
    h, w = x.shape[-2:]

    def at(dy, dx):
        return p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    mag = gx.abs() + gy.abs()
    lo, hi = int(low // 1), int(high // 1)  # cvFloor

    def m_at(dy, dx):  # magnitudes outside the image are 0
        return _shift(mag, dy, dx, 0)

    ax = gx.abs()
    ay = gy.abs() << CANNY_SHIFT
    tg22x = ax * TG22
    tg67x = tg22x + (ax << (CANNY_SHIFT + 1))
    horizontal = ay < tg22x
    vertical = ~horizontal & (ay > tg67x)
    diagonal = ~horizontal & ~vertical
    s = torch.where((gx ^ gy) < 0, -1, 1)
    keep_h = (mag > m_at(0, -1)) & (mag >= m_at(0, 1))
    keep_v = (mag > m_at(-1, 0)) & (mag >= m_at(1, 0))
    # diagonal neighbours: (y-1, x-s) and (y+1, x+s)
    d_pos = (mag > m_at(-1, -1)) & (mag > m_at(1, 1))
    d_neg = (mag > m_at(-1, 1)) & (mag > m_at(1, -1))
    keep_d = torch.where(s > 0, d_pos, d_neg)
    candidate = (mag > lo) & ((horizontal & keep_h) | (vertical & keep_v) | (diagonal & keep_d))
    # Hysteresis: candidates 8-connected to a strong one (what OpenCV's stack walk reaches).
    edges = candidate & (mag > hi)
    while True:
        grown = F.max_pool2d(edges.unsqueeze(1).float(), 3, stride=1, padding=1).squeeze(1) > 0
        grown &= candidate
        if torch.equal(grown, edges):
            return edges
        edges = grown


# OpenCV's DIST_L2 with a 5x5 mask: chamfer weights 1, 1.4, 2.1969 in 16-bit fixed point.
DIST_SHIFT = 16
HV = round(1.0 * (1 << DIST_SHIFT))
DIAG = round(1.4 * (1 << DIST_SHIFT))
LONG = round(2.1969 * (1 << DIST_SHIFT))
INIT = (2**31 - 1) >> 2


def chamfer_distance(zero: torch.Tensor) -> torch.Tensor:
    """cv2.distanceTransform(src, DIST_L2, 5) where `zero` marks src == 0 -> int64 fixed-point
    distances (divide by 2^16 for OpenCV's float32 values, exact below 256).

    OpenCV's forward and backward raster scans, a row at a time: within a row each pass is
    d[j] = min(a[j], d[j -/+ 1] + 1), a running minimum (cummin) of a[k] -/+ k."""
    b, h, w = zero.shape
    big = torch.full((b, 2, w + 4), INIT, dtype=torch.int64, device=zero.device)
    rows = [big[:, 0], big[:, 1]]  # two border rows above
    cols = torch.arange(w, device=zero.device)

    def row_min(prev2, prev1, offsets):
        # prev rows padded by 2 columns of INIT on each side; pairwise minimum (a stacked amin
        # over the candidates reduces across a strided axis, several times slower)
        best = None
        for src, dx, cost in offsets:
            r = prev2 if src == 2 else prev1
            cand = r[:, 2 + dx : 2 + dx + w] + cost
            best = cand if best is None else torch.minimum(best, cand)
        return best

    above = ((2, -1, LONG), (2, 1, LONG), (1, -2, LONG), (1, -1, DIAG), (1, 0, HV), (1, 1, DIAG), (1, 2, LONG))
    below = ((2, 1, LONG), (2, -1, LONG), (1, 2, LONG), (1, 1, DIAG), (1, 0, HV), (1, -1, DIAG), (1, -2, LONG))
    padded = lambda r: F.pad(r, (2, 2), value=INIT)  # noqa: E731
    fwd = []
    for i in range(h):
        a = row_min(rows[-2], rows[-1], above)
        a = torch.where(zero[:, i], torch.zeros_like(a), a)
        run = torch.cummin(a - cols * HV, dim=1).values + cols * HV
        run = torch.minimum(run, INIT + (cols + 1) * HV)  # the border column left of the row
        fwd.append(run)
        rows.append(padded(run))
    out = [None] * h
    rows = [big[:, 0], big[:, 1]]  # two border rows below
    for i in range(h - 1, -1, -1):
        a = torch.minimum(fwd[i], row_min(rows[-2], rows[-1], below))
        rev = torch.flip(a, dims=[1])
        run = torch.cummin(rev - cols * HV, dim=1).values + cols * HV
        run = torch.minimum(run, INIT + (cols + 1) * HV)
        run = torch.flip(run, dims=[1])
        out[i] = run
        rows.append(padded(run))
    return torch.stack(out, dim=1)


def box3(x: torch.Tensor) -> torch.Tensor:
    """3x3 sums with reflect-101 borders (cv2.blur's default), same dtype as x."""
    p = pad(x.unsqueeze(1), 1, "reflect101").squeeze(1)
    h, w = x.shape[-2:]
    total = torch.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            total = total + p[:, dy : dy + h, dx : dx + w]
    return total


def equalize_hist(img: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist on uint8-valued int64 images (B, H, W)."""
    b = img.shape[0]
    flat = img.reshape(b, -1)
    total = flat.shape[1]
    hist = torch.zeros((b, 256), dtype=torch.int64, device=img.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat))
    first = (hist > 0).to(torch.int64).argmax(1)  # the lowest level present
    first_count = hist.gather(1, first[:, None]).squeeze(1)
    # float, as OpenCV
    scale = torch.tensor(255.0, dtype=torch.float32, device=img.device) / (total - first_count).to(torch.float32).clamp(
        min=1
    )
    cum = torch.cumsum(hist, 1) - first_count[:, None]  # sum of counts above the first level
    # saturate_cast: nearest even
    lut = torch.round(cum.to(torch.float32) * scale[:, None]).clamp(0, 255).to(torch.int64)
    levels = torch.arange(256, device=img.device)[None, :]
    lut = torch.where(levels <= first[:, None], 0, lut)
    out = lut.gather(1, flat).view_as(img)
    single = first_count == total  # one level only: OpenCV sets the image to that level
    return torch.where(single[:, None, None], first[:, None, None].expand_as(img), out)


def filter3_saturate(img: torch.Tensor, kernel) -> torch.Tensor:
    """cv2.filter2D(img, CV_8U, kernel) for an integer 3x3 kernel: exact integer correlation,
    reflect-101 borders, saturated to 0..255."""
    p = pad(img.unsqueeze(1).double(), 1, "reflect101").squeeze(1).to(torch.int64)
    h, w = img.shape[-2:]
    total = torch.zeros_like(img, dtype=torch.int64)
    for dy in range(3):
        for dx in range(3):
            k = int(kernel[dy][dx])
            if k:
                total = total + k * p[:, dy : dy + h, dx : dx + w]
    return total.clamp(0, 255)
