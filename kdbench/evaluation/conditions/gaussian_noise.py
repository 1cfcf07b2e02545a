"""Additive Gaussian noise in [0, 1] pixel space, clipped; not quantised to uint8 (CIFAR-10-C's
`gaussian_noise` corruption, which is, lives with the corruptions)."""

from __future__ import annotations

from pydantic import Field

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.base import Condition, Params
from kdbench.util.levels import PixelValue
from kdbench.util.seeding import per_example_normal


class NoiseParams(Params):
    sigmas: list[PixelValue] = Field(min_length=1, description="standard deviations in [0, 1] pixel units")


@register_condition("gaussian_noise")
class GaussianNoise(Condition):
    """Gaussian noise sweep: clip(x + sigma * N(0, 1), 0, 1), one seeded generator per test image."""

    group = "noise"
    Params = NoiseParams

    def levels(self):
        return list(self.params.sigmas)

    def perturb(self, x, y, indices, level):
        # One generator per image: the noise an image gets does not depend on the batch it is in.
        noise = per_example_normal(x.shape[1:], indices, self.seed, self.name, float(level), dtype=x.dtype)
        return (x + float(level) * noise.to(x.device)).clamp_(0.0, 1.0)
