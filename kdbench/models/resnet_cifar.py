"""CIFAR ResNets (He et al. 2016, depth 6n+2) with the module names of CRD / mdistiller.

The key layout (conv1, bn1, layer1-3 of BasicBlocks with `downsample.0/1`, fc) is that of
HobbitLong/RepDistiller and megvii-research/mdistiller, so their published teacher checkpoints
(resnet56, resnet110, resnet32x4, ...) load strict. Like them we use 1x1-conv projection shortcuts
("option B") where He et al. zero-pad; it adds ~1% parameters.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from kdbench.models import register_model

BASE = (16, 16, 32, 64)
X4 = (32, 64, 128, 256)  # CRD's "x4": stem 32, stages 4x the base widths


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(cout),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


@register_model("resnet8", depth=8, widths=BASE)
@register_model("resnet20", depth=20, widths=BASE)
@register_model("resnet32", depth=32, widths=BASE)
@register_model("resnet56", depth=56, widths=BASE)
@register_model("resnet110", depth=110, widths=BASE)
@register_model("resnet8x4", depth=8, widths=X4)
@register_model("resnet32x4", depth=32, widths=X4)
class CifarResNet(nn.Module):
    """CIFAR ResNet (He et al., 2016) in the CRD / mdistiller layout.

    A stem conv to widths[0], then three stages of (depth - 2) / 6 basic blocks at widths[1:],
    strides 1, 2, 2."""

    feature_stages = ("layer1", "layer2", "layer3")

    def __init__(self, depth: int, widths: tuple[int, int, int, int], num_classes: int = 10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = _conv3x3(3, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for i, (cout, stride) in enumerate(zip(widths[1:], (1, 2, 2)), start=1):
            blocks = [BasicBlock(cin, cout, stride)] + [BasicBlock(cout, cout) for _ in range(n - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = cout
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        # Global pooling rather than a fixed 8x8 window, so the net also runs on other input sizes.
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
