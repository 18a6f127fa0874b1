"""Models: one registry of backbones, a split classifier (features -> pool -> head)."""

from __future__ import annotations

import torch
import torch.nn as nn

from longtail.errors import LongtailError
from longtail.models.heads import CosineHead, LinearHead, LWSHead, make_head, tau_normalize
from longtail.models.resnet_cifar import resnet8, resnet18_cifar, resnet20, resnet32, resnet34_cifar
from longtail.models.resnet_imagenet import resnet50, resnext50

BACKBONES = {"resnet8": resnet8, "resnet20": resnet20, "resnet32": resnet32, "resnet18_cifar": resnet18_cifar, "resnet34_cifar": resnet34_cifar, "resnet50": resnet50, "resnext50": resnext50}


def _timm_backbone(name: str, in_channels: int) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise LongtailError(f"model 'timm:{name}' needs timm", "pip install 'longtail[timm]'") from None
    net = timm.create_model(name, pretrained=False, num_classes=0, global_pool="", in_chans=in_channels)

    class _Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net
            self.out_features = net.num_features

        def forward(self, x):
            return self.net.forward_features(x)

    return _Wrap()


class Classifier(nn.Module):
    """``backbone`` → feature map; ``pool`` → embedding; ``head`` → logits.

    Methods need these steps separately: H2TF/PIF edit the feature map, BNS reads the
    embedding, decoupled methods replace the head. ``forward`` is the plain composition,
    the exact deployed architecture.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    @property
    def feature_dim(self) -> int:
        return self.backbone.out_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    @staticmethod
    def pool(fmap: torch.Tensor) -> torch.Tensor:
        return fmap.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


def check_arch(arch: str) -> None:
    """``model.arch`` names a registered backbone or ``timm:<name>`` (checked before any work)."""
    if arch.startswith("timm:") or arch in BACKBONES:
        return
    import difflib

    close = difflib.get_close_matches(arch, list(BACKBONES), n=1)
    raise LongtailError(f"unknown model '{arch}'", (f"did you mean '{close[0]}'? " if close else "")
                        + f"model.arch must be one of {sorted(BACKBONES)} or 'timm:<name>'")


def build_model(arch: str, num_classes: int, in_channels: int, head: str = "linear") -> Classifier:
    if arch.startswith("timm:"):
        backbone = _timm_backbone(arch[5:], in_channels)
    else:
        check_arch(arch)
        backbone = BACKBONES[arch](in_channels)
    return Classifier(backbone, make_head(head, backbone.out_features, num_classes))


__all__ = ["BACKBONES", "Classifier", "check_arch", "CosineHead", "LWSHead", "LinearHead", "build_model", "make_head", "tau_normalize"]
