"""The team's own network, registered for kdbench (the suite names this file in `plugins:`)."""

from torch import nn

import kdbench


@kdbench.register_model("teamnet")
def teamnet(num_classes: int = 10) -> nn.Module:
    """The team's small CNN: two conv blocks with max-pooling, a third without, global average pooling."""
    conv = [nn.Conv2d(c, d, 3, padding=1, bias=False) for c, d in ((3, 16), (16, 32), (32, 64))]
    blocks = [nn.Sequential(c, nn.BatchNorm2d(c.out_channels), nn.ReLU()) for c in conv]
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
    return nn.Sequential(blocks[0], nn.MaxPool2d(2), blocks[1], nn.MaxPool2d(2), blocks[2], head)
