"""A small Vision Transformer (Dosovitskiy et al., ICLR 2021) for small images.

Patches of ``patch`` px → linear embedding (a strided convolution), a class token, learned
position embeddings, ``depth`` pre-norm Transformer blocks, a final LayerNorm. The backbone's
output is the **token map** ``B × (1 + N) × D`` (the class token first), not a ``B × C × H × W``
feature map; :meth:`ViT.pool` reads the class token, as the original does. The position
embeddings are learned for a ``grid`` × ``grid`` patch grid and resized bicubically to the
input's grid, so one model takes 28 px and 32 px images alike.

It is the token-map backbone of longtail's own (no timm needed): PIF and H2TF fuse its
embedding channels, :mod:`longtail.models.checkpointing` checkpoints its blocks.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ViT(nn.Module):
    def __init__(self, in_channels: int = 3, patch: int = 4, dim: int = 96, depth: int = 4, heads: int = 4,
                 mlp_ratio: int = 2, grid: int = 8):
        super().__init__()
        self.patch, self.grid = patch, grid
        self.embed = nn.Conv2d(in_channels, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, grid * grid, dim) * 0.02)
        self.blocks = nn.Sequential(*[
            nn.TransformerEncoderLayer(dim, heads, mlp_ratio * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
            for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.out_features = dim

    def _positions(self, h: int, w: int) -> torch.Tensor:
        if (h, w) == (self.grid, self.grid):
            return self.pos
        pos = self.pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        return F.interpolate(pos, (h, w), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)  # B × D × h × w
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2) + self._positions(h, w)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1)
        return self.norm(self.blocks(x))

    @staticmethod
    def pool(tokens: torch.Tensor) -> torch.Tensor:
        return tokens[:, 0]


def vit_tiny(in_channels: int = 3) -> ViT:
    """Patch 4, width 96, 4 blocks of 4 heads: ~0.3 M parameters, for 28-32 px images."""
    return ViT(in_channels)
