"""Seeds derived from names, so every random draw is reproducible and independent of batching."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*parts) -> int:
    """A 63-bit seed from any parts (numbers, strings); stable across runs, platforms and Python versions."""
    text = "\x1f".join(repr(p) if not isinstance(p, str) else p for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(*parts, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*parts))
    return g


def per_example_normal(shape_per_example, indices, *parts, device="cpu", dtype=torch.float32) -> torch.Tensor:
    """Standard normal noise, one generator per example index: the draw for an image does not
    depend on the batch it sits in, the batch size or which other conditions ran."""
    out = torch.empty((len(indices), *shape_per_example), dtype=dtype)
    for row, idx in enumerate(indices.tolist() if hasattr(indices, "tolist") else indices):
        out[row] = torch.randn(shape_per_example, generator=generator(*parts, int(idx)), dtype=dtype)
    return out.to(device)
