"""``+bnrefresh``: ours, a classifier-stage plug-in that refreshes BatchNorm's running statistics
on instance-sampled batches, with no fusion and no loss of its own.

Why: H2T's donor batch (drawn instance-wise, i.e. with the training set's long-tailed class
frequencies) passes through the network every step while BatchNorm updates, and the ratio-0
control (that pass with nothing swapped) carries H2T's tail gain on DR; with the donor pass in
evaluation mode (``h2tf: {donor_bn: eval}``) the gain goes. So what helps is the statistics the
classifier is evaluated with, not the fusion. This plug-in keeps only that: each training step
one more batch from its own sampler (``sampler``, default ``instance``) goes forward through the
backbone with BatchNorm in training mode (whatever the stage's ``backbone_bn``: a MiSLAS stage
with BatchNorm frozen gets its statistics refreshed too) and no gradient; its features are
discarded. The labelled batches are untouched, so with ``backbone_bn: train`` the stage sees
both batches' statistics (as H2T's ratio-0 control does) and with ``frozen`` only the refresh
batches'. At evaluation the plug-in does nothing: the deployed model is the base architecture
with refreshed statistics.

Nothing of this is in H2T's or MiSLAS's code; MiSLAS's "shift learning" on BatchNorm (its
``shift_bn``) re-estimates the statistics on the class-balanced batches the classifier trains
on, this on instance-sampled ones.
"""

from __future__ import annotations

import torch

from longtail.errors import LongtailError
from longtail.methods.base import Batch, Plugin, register
from longtail.methods.pih2t import batchnorm_mode


@register
class BNRefresh(Plugin):
    """Each training step, one batch of ``sampler`` through the backbone with BatchNorm
    updating and no gradient (module docstring)."""

    id = "bnrefresh"
    params = {"sampler": "instance"}
    extra_samplers = {"refresh": "instance"}

    def __init__(self, ctx, base, **args):
        super().__init__(ctx, base, **args)
        if not isinstance(self.args["sampler"], str):
            raise LongtailError(f"bnrefresh: sampler {self.args['sampler']!r} is not a sampler name",
                                "set method_args.bnrefresh.sampler to e.g. instance (the training set's own frequencies)")
        self.extra_samplers = {**self.extra_samplers, "refresh": self.args["sampler"]}

    def transform_features(self, fmap: torch.Tensor, batch: Batch) -> torch.Tensor:
        fmap = super().transform_features(fmap, batch)
        if self.ctx.model.training:
            with torch.no_grad(), batchnorm_mode(self.ctx.model, True):
                self.ctx.model.backbone(batch.extra["refresh"].x)
        return fmap
