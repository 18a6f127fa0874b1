"""ImageNet-style ResNet-50 and ResNeXt-50 (32x4d) backbones (He et al. 2016; Xie et al. 2017),
the ImageNet-LT / Places-LT / iNaturalist backbones of the long-tail literature. Written
here so the core install needs no torchvision; ``timm:<name>`` models (optional extra
``longtail[timm]``) are available through the registry too."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1, groups=1, base_width=64):
        super().__init__()
        width = int(planes * base_width / 64) * groups
        self.conv1 = nn.Conv2d(in_planes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        nn.init.zeros_(self.bn3.weight)  # zero-init the last BN of each block (Goyal et al. 2017)
        self.downsample = None
        if stride != 1 or in_planes != planes * 4:
            self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNetImageNet(nn.Module):
    """Backbone only: ``forward(x)`` returns the last feature map (B x 2048 x H/32 x W/32)."""

    def __init__(self, layers=(3, 4, 6, 3), in_channels=3, groups=1, base_width=64):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        )
        stages, in_planes = [], 64
        for i, (n, planes) in enumerate(zip(layers, (64, 128, 256, 512))):
            blocks = []
            for j in range(n):
                blocks.append(Bottleneck(in_planes, planes, 2 if (i > 0 and j == 0) else 1, groups, base_width))
                in_planes = planes * 4
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_features = in_planes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.stages(self.stem(x))


def resnet50(in_channels: int = 3) -> ResNetImageNet:
    return ResNetImageNet((3, 4, 6, 3), in_channels)


def resnext50(in_channels: int = 3) -> ResNetImageNet:
    return ResNetImageNet((3, 4, 6, 3), in_channels, groups=32, base_width=4)
