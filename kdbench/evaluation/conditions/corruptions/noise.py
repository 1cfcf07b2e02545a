"""Noise: gaussian, shot (Poisson), impulse (salt and pepper) and speckle.

Pointwise and in float64 in the reference's order of operations, so that with the same random
numbers the bytes equal a plain numpy computation of the reference's steps, at any size.
"""

from __future__ import annotations

import functools

import numpy as np

from kdbench.evaluation.conditions.corruptions import corruption
from kdbench.evaluation.conditions.corruptions.core import Draw, to_uint8
from kdbench.util.lazy import lazy

torch = lazy("torch")
stats = lazy("scipy.stats")


def _pixels(kind: str, dtype: str = "float64"):
    """One draw per pixel and channel."""
    return lambda c, side: (Draw("z" if kind == "normal" else "u", (3, side, side), kind, dtype),)


def _x01(levels: torch.Tensor) -> torch.Tensor:
    return levels.double() / 255.0  # np.array(x) / 255.


@corruption(
    "gaussian_noise",
    "noise",
    {
        32: [0.04, 0.06, 0.08, 0.09, 0.10],
        64: [0.04, 0.08, 0.12, 0.15, 0.18],
        224: [0.08, 0.12, 0.18, 0.26, 0.38],
    },
    draws=_pixels("normal", "float32"),
)
def gaussian_noise(levels, c, d):
    """x + N(0, c^2) per pixel and channel, clipped."""
    x = _x01(levels)
    return to_uint8(x.add_(d["z"].double().mul_(c)))  # separate ops: numpy's two roundings


@corruption(
    "shot_noise",
    "noise",
    {32: [500, 250, 100, 75, 50], 64: [250, 100, 50, 30, 15], 224: [60, 25, 12, 5, 3]},
    draws=_pixels("uniform"),
)
def shot_noise(levels, c, d):
    """Poisson(x * c) / c, clipped.

    Sampled by inverting the Poisson CDF at the image's uniform draws: x takes 256 values, so
    the CDFs are a small table (see `poisson_levels`)."""
    return poisson_levels(levels, d["u"], int(c))


@corruption(
    "impulse_noise",
    "noise",
    {
        32: [0.01, 0.02, 0.03, 0.05, 0.07],
        64: [0.01, 0.02, 0.05, 0.08, 0.14],
        224: [0.03, 0.06, 0.09, 0.17, 0.27],
    },
    draws=_pixels("uniform"),
)
def impulse_noise(levels, c, d):
    """Salt and pepper: skimage's random_noise(mode='s&p', amount=c).

    Each value (per channel) is replaced with probability c, by 0 or 1 with equal odds:
    u < c/2 gives pepper, c/2 <= u < c salt."""
    u = d["u"]
    out = torch.where(u < c / 2, 0.0, torch.where(u < c, 255.0, levels.double()))
    return out.to(torch.uint8)  # unchanged values stay k: floor(k / 255. * 255) == k for every k


@corruption(
    "speckle_noise",
    "noise",
    {
        32: [0.06, 0.10, 0.12, 0.16, 0.20],
        64: [0.15, 0.20, 0.25, 0.30, 0.35],
        224: [0.15, 0.20, 0.35, 0.45, 0.60],
    },
    draws=_pixels("normal", "float32"),
)
def speckle_noise(levels, c, d):
    """x + x * N(0, c^2), clipped."""
    x = _x01(levels)
    return to_uint8(x.add_(d["z"].double().mul_(c).mul_(x)))


# ------------------------------------------------------------------------ Poisson by inversion
BINS = 4096  # quantile table resolution: most draws need no refinement step at all


@functools.lru_cache(maxsize=None)
def _poisson_tables(c: int, device: str):
    """For level k (x = k/255, mean x * c) and BINS bins of u:

    cdf[k, q]  P(Poisson <= q) for q < c, and 1 at q = c (counts of c or more all clip to 1);
    out[q]     np.uint8(np.clip(q / c, 0, 1) * 255), the output level of count q;
    code[k, m] the output level when every count in bin m's bracket [F^-1(m/BINS), F^-1((m+1)/BINS)]
               gives the same level (nearly all bins), else -1 - (the bracket's first count)."""
    lam = np.arange(256) / 255.0 * c
    q = np.arange(c + 1)
    cdf = stats.poisson.cdf(q[None, :], lam[:, None])
    cdf[:, -1] = 1.0
    out = to_uint8(torch.arange(c + 1, dtype=torch.float64) / c).numpy().astype(np.int64)
    grid = np.arange(BINS + 1) / BINS
    edge = np.stack([np.searchsorted(row, grid, side="left") for row in cdf]).clip(max=c)
    lo, hi = edge[:, :-1], edge[:, 1:]
    code = np.where(out[lo] == out[hi], out[lo], -1 - lo).astype(np.int16)
    return (
        torch.tensor(cdf.reshape(-1), dtype=torch.float64, device=device),
        torch.tensor(out, dtype=torch.uint8, device=device),
        torch.tensor(code.reshape(-1), device=device),
        torch.tensor(hi.reshape(-1).astype(np.int16), device=device),
    )


def poisson_levels(levels: torch.Tensor, u: torch.Tensor, c: int) -> torch.Tensor:
    """uint8 np.clip(Poisson(x * c) / c, 0, 1) * 255 with the count min{q : F(q) >= u}."""
    cdf, out, code, upper = _poisson_tables(int(c), str(levels.device))
    k = levels.to(torch.int32).reshape(-1)
    at = k * BINS + (u.reshape(-1) * BINS).to(torch.int32).clamp_(max=BINS - 1)
    level = code.index_select(0, at)
    todo = torch.nonzero(level < 0).squeeze(1)
    if todo.numel():
        at = at[todo]
        lo = (-1 - level[todo]).to(torch.int64)
        counts = poisson_search(
            cdf,
            k[todo].to(torch.int64) * (c + 1),
            u.reshape(-1)[todo].double(),
            lo,
            upper.index_select(0, at).to(torch.int64),
        )
        level[todo] = out[counts].to(level.dtype)
    return level.to(torch.uint8).view(u.shape)


def poisson_search(
    cdf: torch.Tensor, base: torch.Tensor, u: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> torch.Tensor:
    """The first q in [lo, hi] with cdf[base + q] >= u, by bisection (the answer is known to lie there)."""
    while bool((hi > lo).any()):
        mid = (lo + hi) // 2
        right = cdf[base + mid] < u
        lo = torch.where(right, mid + 1, lo)
        hi = torch.where(right, hi, mid)
    return lo


def poisson_inverse(k: torch.Tensor, u: torch.Tensor, c: int) -> torch.Tensor:
    """The count itself, min{q : P(Poisson(k/255 * c) <= q) >= u} capped at c (for tests)."""
    cdf = _poisson_tables(int(c), str(k.device))[0]
    flat_k = k.reshape(-1).to(torch.int64)
    lo = torch.zeros_like(flat_k)
    hi = torch.full_like(flat_k, int(c))
    return poisson_search(cdf, flat_k * (c + 1), u.reshape(-1).double(), lo, hi).view(u.shape)
