"""PIF in its authors' form: a learned, channel-permutation-equivariant transform of the last
feature map (H2T repository, github Keke921/H2T, commit 3dafa70 "Add PIF", 2024-10-16,
``models/resnet_cifar.py``, class ``ResNet_fe``, the ``feature_tuning`` branch).

For each sample and each channel map ``x_c`` (``B × C × H × W``), with ``m = mean_c x_c`` the
mean over channels at each position, the pair ``(x_c, x_c − m)`` goes through one shared stack
of 1 × 1 ``Conv1d`` layers, 2 → 4 → 2 → 1 channels with biases and no activation between
them::

    out_hat = torch.stack((out, out - out_mean), dim=2).reshape(bs * dim, -1, w * h)
    out_hat = self.conv1d(out_hat).reshape(bs, dim, w, h)

The same weights act on every channel, and ``m`` is a symmetric function of all channels, so
permuting the channels permutes the output (a DeepSets-style equivariant layer). The stack is
affine: with ``(a, b)`` the composed weights and ``γ`` the composed bias,

    y_c = a · x_c + b · (x_c − m) + γ = α x_c + β m + γ,   α = a + b,  β = −b.

What the sketch leaves unfinished, completed here as it intends: its ``forward`` computes
``out_hat`` but returns ``out`` (we return the transformed map), and its stem ``Conv2d`` is
given an unknown ``feature_tuning`` keyword (the layer is built on its own here, after the
backbone). Its Conv1d layers keep PyTorch's default initialisation, as there (the sketch's
``_weights_init`` touches only ``Linear`` and ``Conv2d``).

Shapes: a CNN map ``B × C × H × W``; a ViT token map ``B × N × D`` (channels are the embedding
dimensions, ``m`` the mean over them for each token); multi-expert maps ``B × E × C × H × W``
(RIDE: each expert's channels, one shared layer — our choice, the sketch has no experts).

Since average pooling and a linear head follow, the layer folds exactly into the head
(:func:`fold_into_linear`): the deployed model is the base architecture.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class EquivariantPIF(nn.Module):
    kind = "pif_equivariant"

    def __init__(self):
        super().__init__()
        # the authors' names: ``conv1d`` = Sequential(Conv1d(2, 4, 1), Conv1d(4, 2, 1), Conv1d(2, 1, 1))
        self.conv1d = nn.Sequential(nn.Conv1d(2, 4, kernel_size=1), nn.Conv1d(4, 2, kernel_size=1),
                                    nn.Conv1d(2, 1, kernel_size=1))

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(a, b, γ)`` of the composed stack: ``y = a x + b (x − m) + γ`` (differentiable)."""
        w, c = None, None
        for conv in self.conv1d:
            wk, bk = conv.weight[:, :, 0], conv.bias  # out × in, out
            w, c = (wk, bk) if w is None else (wk @ w, wk @ c + bk)
        return w[0, 0], w[0, 1], c[0]

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        a, b, g = self.coefficients()
        a, b, g = (t.to(fmap.dtype) for t in (a, b, g))
        # the channel axis: 1 for B × C × H × W, 2 for B × N × D (tokens) and B × E × C × H × W (experts)
        axis = 2 if fmap.ndim in (3, 5) else 1
        m = fmap.mean(dim=axis, keepdim=True)
        return a * fmap + b * (fmap - m) + g


@torch.no_grad()
def fold_into_linear(pif: EquivariantPIF, weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear head ``z = W e + b`` after pooling the transformed map equals ``z = W' e + b'`` on
    the pooled untransformed map ``e`` (``C`` channels), since pooling is linear and the channel
    mean of the pooled map is the pooled channel mean::

        W e_y + b = W (α e + β mean(e) 1 + γ 1) + b
                  = (α W + (β / C) (W 1) 1ᵀ) e + (b + γ W 1)
    """
    a, b, g = (float(t) for t in pif.coefficients())
    alpha, beta = a + b, -b
    rowsum = weight.sum(1)
    w = alpha * weight + (beta / weight.shape[1]) * rowsum[:, None]
    bb = (bias if bias is not None else torch.zeros_like(rowsum)) + g * rowsum
    return w, bb
