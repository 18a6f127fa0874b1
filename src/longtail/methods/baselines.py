"""One-stage baselines: losses and re-sampling on the shared engine (formulas in
``longtail.losses`` and ../shared/spec/BASELINES.md)."""

from __future__ import annotations

import torch

from longtail import losses
from longtail.methods.base import Batch, Method, register


@register
class ClassBalancedReweight(Method):
    """``w_y · CE`` with effective-number weights (Cui et al. 2019); ``drw_epoch`` defers them
    (deferred re-weighting, Cao et al. 2019: plain CE before that epoch)."""

    id = "cb_reweight"
    params = {"beta": 0.9999, "drw_epoch": 0}

    def prepare(self):
        self.weights = losses.effective_number_weights(self.ctx.class_counts, self.args["beta"]).to(self.ctx.device)
        self.active = self.args["drw_epoch"] == 0

    def on_epoch_start(self, epoch):
        self.active = epoch >= self.args["drw_epoch"]

    def class_weights(self):
        return self.weights if self.active else None

    def loss(self, logits, batch: Batch):
        return losses.focal_loss(logits, batch.y, 0.0, self.class_weights()) if self.active else super().loss(logits, batch)


@register
class Focal(ClassBalancedReweight):
    """Focal loss (γ), optionally with class-balanced weights (``beta`` > 0: CB-focal)."""

    id = "focal"
    params = {"gamma": 1.0, "beta": 0.0, "drw_epoch": 0}

    def loss(self, logits, batch: Batch):
        return losses.focal_loss(logits, batch.y, self.args["gamma"], self.class_weights() if self.args["beta"] else None)


@register
class ClassBalancedResample(Method):
    id = "cb_resample"
    stage_defaults = {**Method.stage_defaults, "sampler": "class_balanced"}


@register
class SqrtResample(Method):
    id = "sqrt_resample"
    stage_defaults = {**Method.stage_defaults, "sampler": "sqrt"}


@register
class ProgressiveResample(Method):
    id = "progressive_resample"
    stage_defaults = {**Method.stage_defaults, "sampler": "progressive"}


@register
class LDAMDRW(ClassBalancedReweight):
    """LDAM loss on cosine logits with deferred class-balanced re-weighting (Cao et al. 2019).
    Needs ``model.head: cosine``."""

    id = "ldam_drw"
    params = {"max_margin": 0.5, "scale": 30.0, "beta": 0.9999, "drw_epoch": 160}

    def prepare(self):
        super().prepare()
        self.margins = losses.ldam_margins(self.ctx.class_counts, self.args["max_margin"]).to(self.ctx.device)

    def loss(self, logits, batch: Batch):
        return losses.ldam_loss(logits, batch.y, self.margins, self.args["scale"], self.class_weights())

    def adjust_logits(self, logits):
        return logits * self.args["scale"]  # calibrated probabilities are softmax(s·z)


@register
class BalancedSoftmax(Method):
    id = "balanced_softmax"

    def loss(self, logits, batch: Batch):
        return losses.balanced_softmax_loss(logits, batch.y, self.ctx.class_counts)


@register
class LogitAdjust(Method):
    """Logit adjustment, loss form (``posthoc: false``) or post-hoc form (``posthoc: true``:
    trains with plain CE and predicts ``argmax(z − τ log π)``)."""

    id = "logit_adjust"
    params = {"tau": 1.0, "posthoc": False}

    def loss(self, logits, batch: Batch):
        if self.args["posthoc"]:
            return super().loss(logits, batch)
        return losses.logit_adjusted_loss(logits, batch.y, self.ctx.class_counts, self.args["tau"])

    def adjust_logits(self, logits):
        return losses.posthoc_adjust(logits, self.ctx.class_counts, self.args["tau"]) if self.args["posthoc"] else logits
