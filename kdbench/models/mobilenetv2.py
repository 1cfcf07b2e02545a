"""MobileNetV2 (Sandler et al. 2018) adapted to 32x32 inputs as in kuangliu/pytorch-cifar.

The stem and the second stage run at stride 1 instead of 2, so a 32x32 image leaves the body at 4x4
rather than 1x1. Module names follow that repository (conv1, bn1, layers.i.*, conv2, bn2, linear).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from kdbench.models import register_model

# (expansion, out channels, blocks, first stride)
_CFG = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),  # stride 2 in the ImageNet model
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise, 1x1 linear projection; residual whenever the stride is 1."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int):
        super().__init__()
        hidden = expansion * cin
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, hidden, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, kernel_size=3, stride=stride, padding=1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = nn.Conv2d(hidden, cout, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        # kuangliu keeps a residual even when channels change (through a 1x1 projection); the paper
        # drops it there. We follow kuangliu so its checkpoints load.
        self.shortcut = nn.Sequential()
        if stride == 1 and cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2(nn.Module):
    # the last block at each resolution (32, 16, 8), then the 1x1 conv's output at 4x4
    feature_stages = ("layers.2", "layers.5", "layers.12", "relu_1")

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks, cin = [], 32
        for expansion, cout, n, stride in _CFG:
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, expansion, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.conv2 = nn.Conv2d(cin, 1280, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.linear = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(self.layers(x))))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model("mobilenetv2")
def mobilenetv2(num_classes: int = 10) -> nn.Module:
    """MobileNetV2 (Sandler et al., 2018) for 32x32 inputs, the CRD / mdistiller variant."""
    return MobileNetV2(num_classes)
