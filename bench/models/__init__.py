"""Architectures, found by the names the suite uses (`resnet20`, `wrn_40_2`, ...), and their input wrapper.

Every kdbench model takes images in [0,1]; normalisation is a `Normalized` wrapper around the bare
network so public checkpoints (which hold only the bare network) load into `wrapper.net` untouched.
"""

from __future__ import annotations

from torch import nn

from ..registry import Registry

MODELS: Registry = Registry("architecture")
register_model = MODELS.register


def create_model(name: str, num_classes: int = 10) -> nn.Module:
    """The bare, randomly initialised architecture `name` (no normalisation: see `wrap`)."""
    net = MODELS.get(name)(num_classes=num_classes)
    # Kept on the instance so checkpoint errors can say which architecture was tried.
    net.arch_name = name
    return net


# Defined above first because the family modules import `register_model` from this package.
from .normalized import NORMALIZATIONS, Normalized, wrap  # noqa: E402
from . import cnn, mobilenetv2, resnet18, resnet_cifar, wrn  # noqa: E402,F401

__all__ = ["MODELS", "register_model", "create_model", "Normalized", "NORMALIZATIONS", "wrap"]
