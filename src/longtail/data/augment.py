"""Augmentation on whole batches of uint8 tensors (no per-image Python, no PIL).

Random crop with zero padding (torchvision ``RandomCrop(size, padding)`` semantics) and
horizontal flip, each drawn per sample from a seeded generator, then the float conversion
and per-channel normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Crop each image of ``x`` (B x C x H x W) at a random offset of its zero-padded copy and
    mirror it with probability 1/2."""
    b, c, h, w = x.shape
    if padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))
        # offsets come from the (CPU) generator so a run's draws do not depend on the device
        dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # B x H x 1
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # B x 1 x W
        batch = torch.arange(b, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    if flip:
        mask = (torch.rand(b, generator=generator) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


def normalize(x: torch.Tensor, mean, std, dtype=torch.float32) -> torch.Tensor:
    """uint8 -> float, ``(x / 255 - mean) / std`` per channel."""
    m = torch.as_tensor(mean, dtype=dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=dtype, device=x.device).view(1, -1, 1, 1)
    return (x.to(dtype) / 255.0 - m) / s
