"""Wide ResNets (Zagoruyko & Komodakis 2016, depth 6n+4, pre-activation blocks).

Module names follow the CRD / mdistiller `wrn.py` and RobustBench's `WideResNet`
(conv1, block1-3.layer.i.{bn1,conv1,bn2,conv2,convShortcut}, bn1, fc), so their checkpoints load strict.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kdbench.models import register_model


class WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, drop: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop = drop
        self.convShortcut = None
        if cin != cout:
            self.convShortcut = nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False)

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        # When the shape changes the shortcut sees the pre-activated input, as in the reference code.
        shortcut = x if self.convShortcut is None else self.convShortcut(pre)
        out = F.relu(self.bn2(self.conv1(pre)))
        if self.drop > 0:
            out = F.dropout(out, p=self.drop, training=self.training)
        return torch.add(shortcut, self.conv2(out))


class Stage(nn.Module):
    # A wrapper only so the keys read `block1.layer.0...` like the published checkpoints.
    def __init__(self, n: int, cin: int, cout: int, stride: int, drop: float):
        super().__init__()
        self.layer = nn.Sequential(
            *[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, drop) for i in range(n)]
        )

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    # the blocks' raw (pre-activation) outputs, as mdistiller's wrn gives them
    feature_stages = ("block1", "block2", "block3")

    def __init__(self, depth: int, widen: int, num_classes: int = 10, drop: float = 0.0):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = Stage(n, widths[0], widths[1], 1, drop)
        self.block2 = Stage(n, widths[1], widths[2], 2, drop)
        self.block3 = Stage(n, widths[2], widths[3], 2, drop)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = F.relu(self.bn1(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model("wrn_16_2")
def wrn_16_2(num_classes: int = 10) -> nn.Module:
    """Wide ResNet 16-2 (Zagoruyko & Komodakis, 2016), RobustBench's key layout."""
    return WideResNet(16, 2, num_classes)


@register_model("wrn_40_2")
def wrn_40_2(num_classes: int = 10) -> nn.Module:
    """Wide ResNet 40-2 (Zagoruyko & Komodakis, 2016), RobustBench's key layout."""
    return WideResNet(40, 2, num_classes)


@register_model("wrn_28_10")
def wrn_28_10(num_classes: int = 10) -> nn.Module:
    """Wide ResNet 28-10 (Zagoruyko & Komodakis, 2016), RobustBench's key layout."""
    return WideResNet(28, 10, num_classes)
