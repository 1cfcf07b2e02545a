"""Plain conv nets small enough to train for a few epochs on a 2-core CPU."""

from __future__ import annotations

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from kdbench.models import register_model


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """F.max_pool2d(x, 2), the same values in the same memory layout; on the CPU a contiguous
    (NCHW) input is pooled in channels-last memory, where torch's kernel is several times faster
    (about 3x with the layout changes, measured on torch 2.14). A max and a layout change are
    exact, so no number changes."""
    if x.device.type != "cpu" or x.dim() != 4 or not x.is_contiguous():
        return F.max_pool2d(x, 2)
    return F.max_pool2d(x.contiguous(memory_format=torch.channels_last), 2).contiguous()


torch.fx.wrap("max_pool_2x2")  # one node when torch.fx traces a network (the feature extractor)


class MaxPool2x2(nn.Module):
    def forward(self, x):
        return max_pool_2x2(x)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False),  # bias is redundant before BN
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        MaxPool2x2(),
    )


class PlainCNN(nn.Module):
    """Three conv-BN-ReLU-maxpool blocks, global average pool, linear head."""

    feature_stages = ("features.0", "features.1", "features.2")

    def __init__(self, widths: tuple[int, int, int], num_classes: int = 10):
        super().__init__()
        c1, c2, c3 = widths
        self.features = nn.Sequential(_block(3, c1), _block(c1, c2), _block(c2, c3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


@register_model("cnn_tiny")
def cnn_tiny(num_classes: int = 10) -> nn.Module:
    """Plain 3-stage CNN, 16-32-64 channels (~25k parameters): a student for CPU smoke runs."""
    return PlainCNN((16, 32, 64), num_classes)


@register_model("cnn_small")
def cnn_small(num_classes: int = 10) -> nn.Module:
    """Plain 3-stage CNN, 32-64-128 channels (~0.09M parameters, ~10M MACs per image)."""
    return PlainCNN((32, 64, 128), num_classes)


@register_model("cnn_wide")
def cnn_wide(num_classes: int = 10) -> nn.Module:
    """Plain 3-stage CNN, 128-256-512 channels (~1.5M parameters): a teacher that trains on a CPU."""
    return PlainCNN((128, 256, 512), num_classes)
