"""The CIFAR ResNet-18 of kuangliu/pytorch-cifar: ImageNet ResNet-18 with a 3x3 stride-1 stem and no maxpool.

Its key layout (conv1, bn1, layer1-4 of BasicBlocks with `shortcut.0/1`, linear) is the one most
third-party CIFAR checkpoints use, including the AutoAttack example `model_test.pt`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from kdbench.models import register_model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        # An empty Sequential (not None) so identity shortcuts add no keys and downsampling ones read shortcut.0/1.
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(cout),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    feature_stages = ("layer1", "layer2", "layer3", "layer4")

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (cout, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout)))
            cin = cout
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        # Global pooling equals kuangliu's avg_pool2d(4) at 32x32 and keeps other sizes working.
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model("resnet18")
def resnet18(num_classes: int = 10) -> nn.Module:
    """The common CIFAR ResNet-18 (conv1, bn1, layer1..4, linear), as public checkpoints store it."""
    return ResNet18(num_classes)
