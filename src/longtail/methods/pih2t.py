"""Head-to-tail feature fusion (H2TF; Li et al., AAAI 2024, arXiv 2306.06963, §3; extended
as half of PI-H2T, arXiv 2506.00625) as a plug-in for the classifier stage of any base
method: ``crt+h2tf``, ``lws+h2tf``, ...

Each step draws two batches: the stage's own sampler (class-balanced in cRT: tail-heavy;
its labels are the targets) and the ``head`` batch from the instance sampler (head-heavy).
With ``F_t, F_h ∈ R^{B×C×H×W}`` their last feature maps, one random channel subset I with
``|I| = ⌊ρ C⌋`` (as the reference code's ``int(beta * C)``) is drawn per step and
``F_t[:, I] ← F_h[:, I]``; pooling, the classifier and the base method's loss follow. At
evaluation nothing is fused: the deployed model is the base architecture.

PIF (permutation-invariant representation fusion, the representation-stage half of PI-H2T)
is not built yet: its exact operation has to be confirmed from the paper (see
docs/methods/pih2t.md).
"""

from __future__ import annotations

import math

import torch

from longtail.errors import LongtailError
from longtail.methods.base import Batch, Plugin, register


def fused_channel_count(channels: int, ratio: float) -> int:
    """``⌊ρ C⌋`` (a small epsilon guards against ρ·C landing just under an integer)."""
    return int(math.floor(ratio * channels + 1e-9))


def head_to_tail_fuse(f_tail: torch.Tensor, f_head: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """``F_t`` with the channels ``channels`` taken from ``F_h`` (a new tensor; inputs untouched).
    The two batches are paired by position (B_t may exceed B_h only if the head batch is
    repeated by the caller)."""
    out = f_tail.clone()
    out[:, channels] = f_head[: f_tail.shape[0], channels]
    return out


@register
class H2TF(Plugin):
    id = "h2tf"
    params = {"ratio": 0.25, "head_sampler": "instance"}
    extra_samplers = {"head": "instance"}

    def __init__(self, ctx, base, **args):
        super().__init__(ctx, base, **args)
        if not 0 <= self.args["ratio"] <= 1:
            raise LongtailError(f"h2tf: ratio {self.args['ratio']} is outside [0, 1]", "set method_args.h2tf.ratio, e.g. 0.25")
        self.extra_samplers = {**self.extra_samplers, "head": self.args["head_sampler"]}

    def transform_features(self, fmap: torch.Tensor, batch: Batch) -> torch.Tensor:
        fmap = super().transform_features(fmap, batch)
        head = batch.extra["head"]
        model = self.ctx.model
        with torch.set_grad_enabled(not self.ctx.frozen_backbone and torch.is_grad_enabled()):
            f_head = model.features(head.x)
        n = fused_channel_count(fmap.shape[1], self.args["ratio"])
        channels = torch.randperm(fmap.shape[1], device=fmap.device)[:n]
        return head_to_tail_fuse(fmap, f_head, channels)
