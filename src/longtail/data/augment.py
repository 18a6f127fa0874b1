"""Augmentation on whole batches of image tensors (no per-image Python, no PIL).

Three policies, each drawn per image from a seeded CPU generator (so a run's draws do not
depend on the device):

- ``crop_flip``: random crop of the zero-padded image (torchvision ``RandomCrop(size,
  padding)``) and horizontal flip, on uint8;
- ``rrc``: random resized crop (area ∈ ``crop_scale``, aspect ∈ [3/4, 4/3]; torchvision
  ``RandomResizedCrop(size)``) and flip, the ImageNet training crop, on float;
- ``simclr``: the contrastive-learning pipeline of Chen et al. 2020 (SimCLR, §B.1) as the BNS
  authors' code builds it (``get_simclr_pipeline_transform(size, s)``): random resized crop
  (area ∈ ``crop_scale``, aspect ∈ [3/4, 4/3]), flip, colour jitter (brightness, contrast,
  saturation 0.8·s, hue 0.2·s, in random order) with probability 0.8, grey with probability
  0.2, then a Gaussian blur with kernel ``2⌊⌊0.1·size⌋/2⌋ + 1`` and σ ~ U(0.1, 2), on float.

Each takes an output ``size`` smaller than the stored images where the data set stores them
larger (``data.resize``); evaluation then takes the centre (:func:`center_crop`).
:func:`normalize` converts to the network's input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from longtail.data import color
from longtail.data.device import constant, to_device


def random_crop_flip(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator,
                     size: int | None = None) -> torch.Tensor:
    """Crop ``size`` x ``size`` (default: the image's own size) out of each image of ``x``
    (B x C x H x W) at a random offset of its zero-padded copy and mirror it with probability 1/2."""
    b, c, h, w = x.shape
    oh, ow = (size, size) if size else (h, w)
    if padding > 0 or (oh, ow) != (h, w):
        padded = F.pad(x, (padding, padding, padding, padding)) if padding > 0 else x
        # offsets come from the (CPU) generator so a run's draws do not depend on the device
        dy = to_device(torch.randint(0, h + 2 * padding - oh + 1, (b,), generator=generator), x.device)
        dx = to_device(torch.randint(0, w + 2 * padding - ow + 1, (b,), generator=generator), x.device)
        rows = (dy[:, None] + torch.arange(oh, device=x.device))[:, :, None]  # B x H x 1
        cols = (dx[:, None] + torch.arange(ow, device=x.device))[:, None, :]  # B x 1 x W
        batch = torch.arange(b, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    return random_flip(x, generator) if flip else x


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image horizontally with probability 1/2."""
    mask = to_device(torch.rand(x.shape[0], generator=generator) < 0.5, x.device)
    return torch.where(mask[:, None, None, None], x.flip(-1), x)


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator, *shape) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, *shape, generator=generator, dtype=torch.float64)


def resized_crop_boxes(b: int, h: int, w: int, scale, ratio, generator: torch.Generator,
                       attempts: int = 10) -> torch.Tensor:
    """``b`` crop boxes (top, left, height, width) of an h x w image, torchvision's
    ``RandomResizedCrop.get_params`` drawn for all images at once: up to ``attempts`` draws of
    an area fraction ~ U(scale) and a log-uniform aspect ratio in ``ratio``; the first box that
    fits is kept, at a uniform position; an image with none gets the largest central box whose
    aspect ratio is within ``ratio``."""
    area = _uniform(b, scale[0], scale[1], generator, attempts) * (h * w)
    aspect = torch.exp(_uniform(b, math.log(ratio[0]), math.log(ratio[1]), generator, attempts))
    bw = torch.round(torch.sqrt(area * aspect)).long()
    bh = torch.round(torch.sqrt(area / aspect)).long()
    fits = (bw > 0) & (bw <= w) & (bh > 0) & (bh <= h)
    first = fits.long().argmax(1, keepdim=True)  # index of the first box that fits
    bw, bh = bw.gather(1, first)[:, 0], bh.gather(1, first)[:, 0]
    found = fits.any(1)
    # the fallback: the whole image, or its central part cut to the nearest allowed ratio
    if w / h < ratio[0]:
        fw, fh = w, int(round(w / ratio[0]))
    elif w / h > ratio[1]:
        fw, fh = int(round(h * ratio[1])), h
    else:
        fw, fh = w, h
    bw = torch.where(found, bw, torch.full_like(bw, fw))
    bh = torch.where(found, bh, torch.full_like(bh, fh))
    u = torch.rand(b, 2, generator=generator, dtype=torch.float64)
    top = torch.where(found, (u[:, 0] * (h - bh + 1)).long(), (h - bh) // 2)
    left = torch.where(found, (u[:, 1] * (w - bw + 1)).long(), (w - bw) // 2)
    return torch.stack((top, left, bh, bw), 1)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Cut box (top, left, height, width) out of each float image and resize it to ``size`` x
    ``size`` (default: the image's own size) by bilinear interpolation with half-pixel centres,
    edges clamped to the box: ``F.interpolate(crop, size, mode="bilinear", align_corners=False)``
    of every image's crop, done for all images in one ``grid_sample``."""
    b, _, h, w = x.shape
    oh, ow = (size, size) if size else (h, w)

    def source(start, length, out, full):  # B x out pixel coordinates read for each output pixel
        start, length = to_device(start.to(x.dtype), x.device)[:, None], to_device(length.to(x.dtype), x.device)[:, None]
        k = torch.arange(out, dtype=x.dtype, device=x.device)[None]
        pos = torch.maximum(start + (k + 0.5) * length / out - 0.5, start)
        pos = torch.minimum(pos, start + length - 1)
        return (2 * pos + 1) / full - 1  # grid_sample's units (align_corners=False)

    top, left, bh, bw = boxes.unbind(1)
    gy, gx = source(top, bh, oh, h), source(left, bw, ow, w)
    grid = torch.stack((gx[:, None, :].expand(b, oh, ow), gy[:, :, None].expand(b, oh, ow)), -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def gaussian_blur(x: torch.Tensor, radius: int, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur, kernel ``2·radius + 1`` wide with one σ per image,
    ``w_t ∝ exp(−t² / 2σ²)``, reflection padding (the BNS code's ``GaussianBlur``)."""
    if radius <= 0:
        return x
    b, c, h, w = x.shape
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-t[None] ** 2 / (2 * to_device(sigma.to(x.dtype), x.device)[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (B·C) x (2r + 1)
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)  # vertical
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)  # horizontal
    return y.view(b, c, h, w)


JITTER_OPS = (color.adjust_brightness, color.adjust_contrast, color.adjust_saturation, color.adjust_hue)


def color_jitter(x: torch.Tensor, strength: float, p: float, generator: torch.Generator) -> torch.Tensor:
    """torchvision ``RandomApply([ColorJitter(0.8s, 0.8s, 0.8s, 0.2s)], p)``: with probability p
    an image gets brightness, contrast and saturation factors ~ U(max(0, 1 − 0.8s), 1 + 0.8s)
    and a hue shift ~ U(−0.2s, 0.2s), applied in an order drawn per image."""
    b = x.shape[0]
    j = 0.8 * strength
    factors = torch.stack([_uniform(b, max(0.0, 1 - j), 1 + j, generator) for _ in range(3)]
                          + [_uniform(b, -0.2 * strength, 0.2 * strength, generator)], 1)
    order = torch.rand(b, 4, generator=generator).argsort(1)
    on = torch.rand(b, generator=generator) < p
    out = x.clone()
    # saturation and hue leave a grey image as it is: on grey images only their draws are made
    ops = JITTER_OPS[:2] if x.shape[1] == 1 else JITTER_OPS
    # for each step and operation, the images whose step-th operation it is (each image is
    # jittered once per operation), selected on the host where the draws are (no device sync)
    # and sent to the device in one copy of indices and one of factors, not two per selection
    picks = [(k, idx) for step in range(4) for k in range(len(ops))
             if len(idx := (on & (order[:, step] == k)).nonzero()[:, 0])]
    if not picks:
        return out
    sizes = [len(idx) for _, idx in picks]
    dev_idx = to_device(torch.cat([idx for _, idx in picks]), x.device).split(sizes)
    dev_factors = to_device(torch.cat([factors[idx, k] for k, idx in picks]), x.device).split(sizes)
    for (k, _), idx, f in zip(picks, dev_idx, dev_factors):
        out[idx] = ops[k](out[idx], f)
    return out


def random_grayscale(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """With probability p an image becomes its luma, repeated over the colour channels."""
    on = to_device(torch.rand(x.shape[0], generator=generator) < p, x.device)
    if x.shape[1] == 1:
        return x
    return torch.where(on.view(-1, 1, 1, 1), color.grayscale(x).expand_as(x), x)


def rrc_flip(x: torch.Tensor, generator: torch.Generator, crop_scale=(0.08, 1.0), flip: bool = True,
             size: int | None = None) -> torch.Tensor:
    """A random resized crop (area ∈ ``crop_scale``, aspect ∈ [3/4, 4/3]) of each uint8 image
    at ``size`` (default: its own), mirrored with probability 1/2, as float in [0, 1]."""
    b, _, h, w = x.shape
    out = resized_crop(x.float() / 255.0, resized_crop_boxes(b, h, w, crop_scale, (3 / 4, 4 / 3), generator), size)
    return random_flip(out, generator) if flip else out


def simclr_augment(x: torch.Tensor, strength: float, generator: torch.Generator, crop_scale=(0.08, 1.0),
                   flip: bool = True, blur: bool = True, size: int | None = None) -> torch.Tensor:
    """The SimCLR view of each uint8 image (module docstring), as float in [0, 1]."""
    out = rrc_flip(x, generator, crop_scale, flip, size)
    out = random_grayscale(color_jitter(out, strength, 0.8, generator), 0.2, generator)
    if blur:
        # the BNS code's GaussianBlur(kernel_size=int(0.1 * size)) rounds the kernel up to odd
        out = gaussian_blur(out, int(0.1 * out.shape[-2]) // 2, _uniform(out.shape[0], 0.1, 2.0, generator))
    return out


def augment(x: torch.Tensor, cfg, generator: torch.Generator, size: int | None = None) -> torch.Tensor:
    """Apply the policy of ``cfg`` (a :class:`longtail.config.AugmentConfig`) to a uint8 batch,
    giving ``size`` x ``size`` images (default: the batch's own size)."""
    size = None if size == x.shape[-1] == x.shape[-2] else size
    if cfg.policy == "simclr":
        return simclr_augment(x, cfg.strength, generator, cfg.crop_scale, cfg.flip, cfg.blur, size)
    if cfg.policy == "rrc":
        return rrc_flip(x, generator, cfg.crop_scale, cfg.flip, size)
    return random_crop_flip(x, cfg.crop_padding, cfg.flip, generator, size)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` of each image (evaluation's crop of larger stored images)."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    top, left = int(round((h - size) / 2)), int(round((w - size) / 2))  # torchvision's CenterCrop
    return x[..., top:top + size, left:left + size]


def normalize(x: torch.Tensor, mean, std, dtype=torch.float32) -> torch.Tensor:
    """``(x − mean) / std`` per channel, x scaled to [0, 1] (uint8 divided by 255, float as is)."""
    m = constant(tuple(float(v) for v in mean), dtype, x.device).view(1, -1, 1, 1)
    s = constant(tuple(float(v) for v in std), dtype, x.device).view(1, -1, 1, 1)
    x = x.to(dtype) / 255.0 if not x.is_floating_point() else x.to(dtype)
    return (x - m) / s
