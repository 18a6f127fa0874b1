"""CIFAR-style ResNet-32 (He et al. 2016, §4.2): 3 stages of 5 basic blocks, 16/32/64 channels,
option-A (zero-padding) shortcuts, as used by LDAM-DRW and most long-tail CIFAR papers.
Any number of input channels (1 for Fashion-MNIST)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class _PadShortcut(nn.Module):
    """Option A: subsample spatially and zero-pad the new channels (no parameters): half of
    ``planes − in_planes`` on each side (``planes // 4`` when the width doubles; RIDE's narrowed
    experts go 16 → 24 → 48)."""

    def __init__(self, planes: int, in_planes: int | None = None):
        super().__init__()
        self.pad = (planes - in_planes) // 2 if in_planes is not None else planes // 4

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _PadShortcut(planes, in_planes) if stride != 1 or in_planes != planes else nn.Identity()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """Backbone only: ``forward(x)`` returns the last feature map (B x 64 x H/4 x W/4)."""

    def __init__(self, num_blocks=(5, 5, 5), in_channels: int = 3, widths=(16, 32, 64)):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, in_planes = [], widths[0]
        for i, (n, planes) in enumerate(zip(num_blocks, widths)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(in_planes, planes, 2 if (i > 0 and j == 0) else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.out_features = in_planes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))


def resnet32(in_channels: int = 3) -> ResNetCifar:
    return ResNetCifar((5, 5, 5), in_channels)


def resnet20(in_channels: int = 3) -> ResNetCifar:
    return ResNetCifar((3, 3, 3), in_channels)


def resnet8(in_channels: int = 3) -> ResNetCifar:
    """A tiny 8-layer variant for tests and smoke runs."""
    return ResNetCifar((1, 1, 1), in_channels)


class ResNetCifar4Stage(nn.Module):
    """ResNet-18 / 34 for 32 px images (the SimCLR / BNS CIFAR variant, Kuang Liu's
    pytorch-cifar layout): a 3 × 3 stem without max-pooling, 4 stages of basic blocks
    (64-128-256-512 channels, ``num_blocks`` each), projection shortcuts."""

    def __init__(self, in_channels: int = 3, num_blocks=(2, 2, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        blocks, in_planes = [], 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(_ProjBlock(in_planes, planes, stride))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.out_features = 512

    def forward(self, x):
        return self.blocks(self.stem(x))


class _ProjBlock(BasicBlock):
    """Basic block with a 1 × 1 convolution shortcut (option B) where the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__(in_planes, planes, stride)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))


def resnet18_cifar(in_channels: int = 3) -> ResNetCifar4Stage:
    """The BNS authors' CIFAR-10 encoder."""
    return ResNetCifar4Stage(in_channels, (2, 2, 2, 2))


def resnet34_cifar(in_channels: int = 3) -> ResNetCifar4Stage:
    """The BNS authors' CIFAR-100 encoder."""
    return ResNetCifar4Stage(in_channels, (3, 4, 6, 3))


class RIDEResNetCifar(nn.Module):
    """RIDE's multi-expert CIFAR ResNet (Wang et al., ICLR 2021; github
    frank-xwang/RIDE-LongTailRecognition, ``model/ldam_drw_resnets/ride_resnet_cifar.py``,
    ``ResNet_s``): the stem and ``layer1`` shared, then ``num_experts`` independent copies of
    ``layer2`` and ``layer3``. ``reduce_dimension`` (RIDE's CIFAR configs: true) narrows the
    experts to 24 / 48 channels so three experts cost about what one 32 / 64 network does.

    ``forward(x)`` returns the experts' last maps stacked, ``B × E × C × H × W`` (C = 48);
    :class:`~longtail.models.Classifier` pools each and applies each expert's own head."""

    def __init__(self, num_blocks=(5, 5, 5), in_channels: int = 3, num_experts: int = 3, reduce_dimension: bool = True):
        super().__init__()
        w2, w3 = (24, 48) if reduce_dimension else (32, 64)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(*[BasicBlock(16, 16) for _ in range(num_blocks[0])])

        def stage(in_planes, planes, n):
            return nn.Sequential(*[BasicBlock(in_planes if j == 0 else planes, planes, 2 if j == 0 else 1) for j in range(n)])

        self.layer2s = nn.ModuleList([stage(16, w2, num_blocks[1]) for _ in range(num_experts)])
        self.layer3s = nn.ModuleList([stage(w2, w3, num_blocks[2]) for _ in range(num_experts)])
        self.num_experts = num_experts
        self.out_features = w3  # per expert
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        shared = self.layer1(F.relu(self.bn1(self.conv1(x))))
        return torch.stack([l3(l2(shared)) for l2, l3 in zip(self.layer2s, self.layer3s)], dim=1)


def ride_resnet32(in_channels: int = 3) -> RIDEResNetCifar:
    """RIDE's CIFAR model: ResNet-32, 3 experts, reduced dimensions."""
    return RIDEResNetCifar((5, 5, 5), in_channels)


def ride_resnet8(in_channels: int = 3) -> RIDEResNetCifar:
    """RIDE's layout on ResNet-8 (one block a stage), 3 experts, reduced dimensions."""
    return RIDEResNetCifar((1, 1, 1), in_channels)
