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

Two controls of ours fold the same way (every neck here has ``coefficients() -> (a, b, γ)``):
:class:`AffinePIF`, a learned scalar scale and offset (the equivariant layer without its
channel-mean term), and :class:`ScalePIF`, a fixed scale.
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

    def summary(self) -> dict[str, float]:
        """The effective α, β, γ of ``y = α x + β m + γ`` (a run's history records them each epoch)."""
        return effective(self)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        a, b, g = self.coefficients()
        a, b, g = (t.to(fmap.dtype) for t in (a, b, g))
        # the channel axis: 1 for B × C × H × W, 2 for B × N × D (tokens) and B × E × C × H × W (experts)
        axis = 2 if fmap.ndim in (3, 5) else 1
        m = fmap.mean(dim=axis, keepdim=True)
        return a * fmap + b * (fmap - m) + g


def _default_init_coefficients(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The effective scale α = a + b and offset γ of ``n`` freshly initialised
    :class:`EquivariantPIF` layers: PyTorch's default Conv1d initialisation draws every weight
    and bias from U(−1/√fan_in, 1/√fan_in), fan_in = 2, 4, 2 for the three layers."""
    def u(bound, *shape):
        return (torch.rand(n, *shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound

    w, c = None, None
    for cin, cout in ((2, 4), (4, 2), (2, 1)):
        bound = cin ** -0.5
        wk, bk = u(bound, cout, cin), u(bound, cout)
        w, c = (wk, bk) if w is None else (wk @ w, (wk @ c[..., None])[..., 0] + bk)
    return w[:, 0, 0] + w[:, 0, 1], c[:, 0]


def init_median_scale(n: int = 200_000) -> float:
    """The median of |α| over the equivariant layer's default initialisation (Monte Carlo with a
    fixed generator: 0.10 to two digits); ``pif: {form: scale}``'s default fixed scale."""
    alpha, _ = _default_init_coefficients(n, torch.Generator().manual_seed(0))
    return float(alpha.abs().median())


class AffinePIF(nn.Module):
    """``pif: {form: affine}``, a control for the authors' layer (issue: is PIF's gain a learned
    feature scale?): one learnable scalar scale s and offset t on the whole map, y = s x + t,
    without the channel mean. Initialised from the same distribution as the equivariant layer's
    effective scale α and offset γ (one draw of its default initialisation, from torch's global
    generator, which the engine seeds), so the two start alike and differ only in the mean term."""

    kind = "pif_affine"

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(int(torch.randint(2**31 - 1, (1,))))
        alpha, gamma = _default_init_coefficients(1, g)
        self.scale = nn.Parameter(alpha.float().reshape(()))
        self.offset = nn.Parameter(gamma.float().reshape(()))

    def coefficients(self):
        """As :meth:`EquivariantPIF.coefficients`: a = s, b = 0, γ = t."""
        return self.scale, torch.zeros_like(self.scale), self.offset

    def summary(self) -> dict[str, float]:
        return effective(self)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.scale.to(fmap.dtype) * fmap + self.offset.to(fmap.dtype)


class ScalePIF(nn.Module):
    """``pif: {form: scale, value: S}``: a fixed (untrained) scale y = S x, by default the
    median |α| of the equivariant layer's initialisation (:func:`init_median_scale`): what a
    constant shrinking of the last map alone does."""

    kind = "pif_scale"

    def __init__(self, value: float = 0.0):
        super().__init__()
        self.register_buffer("value", torch.tensor(float(value) or init_median_scale()))

    def coefficients(self):
        return self.value, torch.zeros_like(self.value), torch.zeros_like(self.value)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.value.to(fmap.dtype) * fmap


NECKS = {"equivariant": EquivariantPIF, "affine": AffinePIF, "scale": ScalePIF}


@torch.no_grad()
def effective(neck: nn.Module) -> dict[str, float]:
    """α = a + b, β = −b and γ of a neck's ``y = a x + b (x − m) + γ`` = ``α x + β m + γ``."""
    a, b, g = (float(t) for t in neck.coefficients())
    return {"alpha": a + b, "beta": -b, "gamma": g}


def neck_from_state(state: dict) -> nn.Module:
    """The neck a state dict's ``neck.*`` keys were saved from."""
    keys = {k[len("neck."):] for k in state if k.startswith("neck.")}
    if "value" in keys:
        return ScalePIF(float(state["neck.value"]))
    if "scale" in keys:
        return AffinePIF()
    return EquivariantPIF()


@torch.no_grad()
def fold_into_linear(pif: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
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
