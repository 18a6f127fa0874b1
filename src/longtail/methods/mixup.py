"""``+mixup``: mixup (Zhang et al., ICLR 2018, Eq. 1) as a plug-in on any base method's loss.

With ``λ ~ Beta(α, α)`` drawn once per step and ``π`` a random permutation of the batch,

    x̃_i = λ x_i + (1 − λ) x_π(i),      L = λ ℓ(f(x̃), y) + (1 − λ) ℓ(f(x̃), y_π),

where ``ℓ`` is the base method's own loss (CE, LDAM, Balanced Softmax, ...), so the mixed
targets go through whatever re-weighting or margin the base applies. This is the stage-1
augmentation of MiSLAS and H2T's released CIFAR configs (α = 1); GCL's classifier stage mixes
too, over a frozen backbone (the head then learns from the features of mixed images). Both draws
use torch's global generator, which the engine seeds per epoch identically on every rank.
"""

from __future__ import annotations

import dataclasses

import torch

from longtail.errors import LongtailError
from longtail.methods.base import Plugin, register


def mix_batch(x: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """``λ x + (1 − λ) x[π]`` (Eq. 1)."""
    return lam * x + (1.0 - lam) * x[perm]


@register
class Mixup(Plugin):
    id = "mixup"
    batch_coupled = "mixup pairs images within the micro-batch"
    params = {"alpha": 1.0}

    def __init__(self, ctx, base, **args):
        super().__init__(ctx, base, **args)
        if not float(self.args["alpha"]) > 0:
            raise LongtailError(f"mixup alpha = {self.args['alpha']} must be > 0",
                                "set method_args.mixup.alpha (1.0 in MiSLAS and H2T; 0.2-0.4 is common on ImageNet)")
        self._mix: tuple[float, torch.Tensor] | None = None

    def training_step(self, model, batch):
        alpha = float(self.args["alpha"])
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(len(batch.y), device=batch.y.device)
        self._mix = (lam, perm)
        return self.base.training_step(model, dataclasses.replace(batch, x=mix_batch(batch.x, lam, perm)))

    def loss(self, logits, batch):
        if self._mix is None:  # a loss outside a mixed step (none in the engine): unmixed
            return self.base.loss(logits, batch)
        lam, perm = self._mix
        partner = dataclasses.replace(batch, y=batch.y[perm], index=batch.index[perm.to(batch.index.device)])
        return lam * self.base.loss(logits, batch) + (1.0 - lam) * self.base.loss(logits, partner)
