"""Seeds derived from names, so every random draw is reproducible and independent of batching."""

from __future__ import annotations

import hashlib

from kdbench.util.lazy import lazy

torch = lazy("torch")


def derive_seed(*parts) -> int:
    """A 63-bit seed from any parts (numbers, strings); stable across runs, platforms and Python versions."""
    text = "\x1f".join(repr(p) if not isinstance(p, str) else p for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(*parts, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*parts))
    return g


def _per_example(draw, shape_per_example, indices, parts, device, dtype) -> torch.Tensor:
    # one generator per example index: the draw for an image does not depend on the batch it sits
    # in, the batch size or which other conditions ran
    dtype = dtype or torch.float32
    out = torch.empty((len(indices), *shape_per_example), dtype=dtype)
    for row, idx in enumerate(indices.tolist() if hasattr(indices, "tolist") else indices):
        out[row] = draw(tuple(shape_per_example), generator=generator(*parts, int(idx)), dtype=dtype)
    return out.to(device)


def per_example_normal(shape_per_example, indices, *parts, device="cpu", dtype=None) -> torch.Tensor:
    """Standard normal noise, seeded per example index."""
    return _per_example(torch.randn, shape_per_example, indices, parts, device, dtype)


def per_example_uniform(shape_per_example, indices, *parts, device="cpu", dtype=None) -> torch.Tensor:
    """Uniform noise in [-1, 1), seeded per example index."""
    return _per_example(torch.rand, shape_per_example, indices, parts, device, dtype).mul_(2).sub_(1)
