"""Colour operations on whole batches of float images in [0, 1] (B x C x H x W).

Each takes one factor per image (a length-B tensor), so a batch is jittered in one pass. The
formulas are torchvision's ``transforms.functional`` ones (Chen et al. 2020, SimCLR §B.1),
including its clamping to [0, 1] after every step; grey (C = 1) images pass through the two
operations that need colour (saturation, hue) unchanged, as in torchvision.
"""

from __future__ import annotations

import torch

from longtail.data.device import constant as _constant  # made once per device: a copy per call makes the host wait

# ITU-R 601-2 luma, the weights of PIL's and torchvision's rgb -> grey
LUMA = (0.299, 0.587, 0.114)


def _per_image(f: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return f.to(x.device, x.dtype).view(-1, 1, 1, 1)


def _blend(x: torch.Tensor, other: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``clamp(f·x + (1 − f)·other, 0, 1)`` with one f per image."""
    f = _per_image(f, x)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma ``0.299 R + 0.587 G + 0.114 B`` (B x 1 x H x W); a grey image is returned as is."""
    if x.shape[1] == 1:
        return x
    return (x * _constant(LUMA, x.dtype, x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``clamp(f·x)``: f = 0 is black, 1 the image."""
    return _blend(x, torch.zeros_like(x), f)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean grey level: f = 0 is a flat grey image, 1 the image."""
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, f)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the image's own grey version: f = 0 is grey, 1 the image."""
    if x.shape[1] == 1:
        return x
    return _blend(x, grayscale(x), f)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> (hue in [0, 1), saturation, value), channel-wise."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    d = torch.where(delta == 0, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta == 0, torch.zeros_like(h), (h / 6.0) % 1.0)
    return torch.stack((h, s, maxc), 1)


# sector i -> (r, g, b) as indices into (v, p, q, t)
SECTORS = ((0, 3, 1), (2, 0, 1), (1, 0, 3), (1, 2, 0), (3, 1, 0), (0, 1, 2))


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_hsv` (the six-sector formula)."""
    h, s, v = x.unbind(1)
    h6 = h * 6.0
    i = torch.floor(h6)
    f = h6 - i
    i = i.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = _constant(SECTORS, torch.long, x.device)
    choices = torch.stack((v, p, q, t), 1)  # B x 4 x H x W
    idx = table[i].permute(0, 3, 1, 2)  # B x 3 x H x W
    return choices.gather(1, idx)


def adjust_hue(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by f (a fraction of the colour circle, in [−0.5, 0.5])."""
    if x.shape[1] == 1:
        return x
    hsv = rgb_to_hsv(x)
    hsv[:, 0] = (hsv[:, 0] + _per_image(f, x)[:, 0]) % 1.0
    return hsv_to_rgb(hsv)
