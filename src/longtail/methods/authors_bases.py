"""The bases H2T and PI-H2T are added to in their papers' tables, as their authors' public code
runs them (file:line citations in docs/methods/bases.md):

- ``mislas`` — MiSLAS's classifier stage (Zhong et al., CVPR 2021; dvlab-research/MiSLAS): the
  stage-1 classifier kept, label-aware smoothing, learnable weight scaling trained beside it, on
  class-balanced batches; "shift learning" on BatchNorm is ``backbone_bn: train``. Its stage 1 is
  ``ce+mixup`` (the same stage as H2T's).
- ``gcl`` — the Gaussian clouded logit loss (Li et al., CVPR 2022; Keke921/GCLLoss) on a cosine
  head, in stage 1 and (with ``train_cls: true``, the focal form) in its classifier stage.
- ``ride`` — RIDE's loss (Wang et al., ICLR 2021; frank-xwang/RIDE-LongTailRecognition) over a
  multi-expert backbone (``model.arch: ride_resnet8`` / ``ride_resnet32``): LDAM-DRW for each
  expert plus the diversity term. The expert router (RIDE's second stage, which lets easy images
  skip experts to save compute) is left out: every expert reads every image.
"""

from __future__ import annotations

import torch

from longtail import losses
from longtail.errors import LongtailError
from longtail.losses.gcl import gcl_loss, gcl_noise, gcl_offsets
from longtail.losses.las import label_aware_smoothing_loss, las_smoothing
from longtail.losses.ride import ride_diversity_weights, ride_loss
from longtail.methods.base import Batch, Method, register
from longtail.methods.decoupling import LWS
from longtail.models.heads import ExpertHeads


def _require_head(method: Method, kind: str, experts: bool = False) -> None:
    head = method.ctx.model.head
    ok = isinstance(head, ExpertHeads) == experts and getattr(head, "kind", None) == kind
    if not ok:
        need = f"model.head: {kind}" + (" with a multi-expert model.arch (ride_resnet8, ride_resnet32)" if experts else "")
        raise LongtailError(f"method '{method.id}' needs {need}", f"set {need} in the config")


@register
class MiSLAS(LWS):
    """MiSLAS's classifier stage (``train_stage2.py``): logits ``f ⊙ (W x + b)`` with the stage-1
    ``W, b`` and scales ``f`` (init 1) trained together, ``W, b`` at ``lr_factor`` × the stage's
    lr and ``f`` at the stage's lr (its ``adjust_learning_rate``, lines 452-462), on the LAS loss.
    Defaults: the CIFAR-10 IF-100 config (smooth_head 0.3, smooth_tail 0.0, lr_factor 0.5;
    CIFAR-100: 0.4, 0.1, 0.2). After the stage the scales fold into the head, as LWS's do."""

    id = "mislas"
    params = {"smooth_head": 0.3, "smooth_tail": 0.0, "lr_factor": 0.5}
    stage_defaults = {"sampler": "class_balanced", "train": "head", "reinit_head": False}

    def prepare(self):
        super().prepare()  # wraps the head in LWSHead (its base frozen)
        for p in self.ctx.model.head.base.parameters():
            p.requires_grad_(True)
        self.smoothing = las_smoothing(self.ctx.class_counts.cpu(), self.args["smooth_head"],
                                       self.args["smooth_tail"]).to(self.ctx.device)

    def lr_scales(self):
        return [(list(self.ctx.model.head.base.parameters()), float(self.args["lr_factor"]))]

    def loss(self, logits, batch: Batch):
        return label_aware_smoothing_loss(logits, batch.y, self.smoothing)


@register
class GCL(Method):
    """The GCL loss on cosine logits (``losses.py:53-83``). Stage 1 (``cifar_train_backbone.py``:
    ``GCLLoss(m=0., s=30, noise_mul=0.5)``); classifier stage (``cifar_train_classifier.py``:
    ``m=0.1, s=20, train_cls=True, noise_mul=0.5, gamma=1.``). Needs ``model.head: cosine``."""

    id = "gcl"
    params = {"margin": 0.0, "scale": 30.0, "noise_mul": 0.5, "train_cls": False, "gamma": 1.0}

    def prepare(self):
        _require_head(self, "cosine")
        self.offsets = gcl_offsets(self.ctx.class_counts.cpu()).to(self.ctx.device)

    def loss(self, logits, batch: Batch):
        a = self.args
        noise = gcl_noise(logits.shape, device=logits.device)
        return gcl_loss(logits, batch.y, self.offsets, noise, a["margin"], a["scale"], a["noise_mul"],
                        a["gamma"] if a["train_cls"] else None)

    def adjust_logits(self, logits):
        return logits * self.args["scale"]  # calibrated probabilities are softmax(s·z)


@register
class RIDE(Method):
    """RIDE's loss over every expert (``model/loss.py``, ``RIDELoss``), with the CIFAR config's
    values as defaults (``configs/config_imbalance_cifar100_ride.json``: diversity factor −0.45,
    reweighting from epoch 160; the loss's own: max_m 0.5, s 30, T 1, reweight_factor 0.05).
    RIDE's ``epoch > reweight_epoch`` counts epochs from 1, so ``drw_epoch`` (from 0) is the
    same number. Evaluation averages the experts' logits (``final_out``) times s."""

    id = "ride"
    needs_images = "pools each expert's feature map apart (cached features are the experts' side by side)"
    params = {"max_margin": 0.5, "scale": 30.0, "diversity_factor": -0.45, "temperature": 1.0,
              "reweight_factor": 0.05, "beta": 0.9999, "drw_epoch": 160}

    def prepare(self):
        _require_head(self, "cosine", experts=True)
        counts = self.ctx.class_counts.cpu()
        self.margins = losses.ldam_margins(counts, self.args["max_margin"]).to(self.ctx.device)
        self.weights = losses.effective_number_weights(counts, self.args["beta"]).to(self.ctx.device)
        self.diversity = ride_diversity_weights(counts.tolist(), self.args["reweight_factor"]).to(self.ctx.device)
        self.active = self.args["drw_epoch"] == 0

    def on_epoch_start(self, epoch):
        self.active = epoch >= self.args["drw_epoch"]

    def head_logits(self, model, emb):
        return model.head.experts(emb)

    def loss(self, logits, batch: Batch):
        if logits.ndim != 3:
            raise LongtailError("ride's loss needs every expert's logits", "use ride with a multi-expert model.arch")
        a = self.args
        return ride_loss(logits, batch.y, self.margins, a["scale"], a["diversity_factor"], a["temperature"],
                         self.weights if self.active else None, self.diversity if self.active else None)

    def adjust_logits(self, logits):
        return logits * self.args["scale"]
