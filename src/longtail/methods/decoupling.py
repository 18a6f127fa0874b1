"""Decoupled classifiers (Kang et al., "Decoupling Representation and Classifier for
Long-Tailed Recognition", ICLR 2020): the backbone of a stage-1 run stays frozen and only the
classifier changes."""

from __future__ import annotations

import numpy as np
import torch

from longtail.methods.base import Method, register
from longtail.models.heads import LWSHead, tau_normalize


@register
class CRT(Method):
    """Classifier re-training: a fresh classifier trained on class-balanced batches over a
    frozen backbone (Kang et al., §4)."""

    id = "crt"
    stage_defaults = {"sampler": "class_balanced", "train": "head", "reinit_head": True}


@register
class LWS(Method):
    """Learnable weight scaling: logits ``f_c · (w_c^T x + b_c)``, only f trained, on
    class-balanced batches (Kang et al., §4). After the stage the scales are folded into the
    linear head's weights and bias, so the deployed model is the plain architecture."""

    id = "lws"
    one_head = "it rescales one linear head's class weights"
    stage_defaults = {"sampler": "class_balanced", "train": "head", "reinit_head": False}

    def prepare(self):
        model = self.ctx.model
        model.head = LWSHead(model.head, self.ctx.num_classes).to(self.ctx.device)

    def finish(self):
        model = self.ctx.model
        lws = model.head
        base = lws.base
        with torch.no_grad():
            f = lws.scales.detach()
            base.weight.mul_(f[:, None])
            if getattr(base, "bias", None) is not None:
                base.bias.mul_(f)
        for p in base.parameters():
            p.requires_grad_(True)
        model.head = base


@register
class TauNorm(Method):
    """τ-normalisation (Kang et al., Eq. 4): ``w_c ← w_c / ||w_c||^τ``, bias dropped. No
    training (give the stage ``epochs: 0``). τ is chosen on the validation split over
    ``grid`` when the run has one (``data.val_per_class``), never on the test set; otherwise
    the fixed ``tau`` is used."""

    id = "tau_norm"
    one_head = "it normalises one head's class weights"
    params = {"tau": 1.0, "grid": [round(t, 2) for t in np.linspace(0, 2, 41).tolist()], "search": True}
    stage_defaults = {"sampler": "instance", "train": "head", "reinit_head": False}

    def prepare(self):
        head = self.ctx.model.head
        self.w0 = head.weight.detach().clone()
        tau = float(self.args["tau"])
        if self.args["search"] and self.ctx.has_val and self.ctx.embed is not None:
            emb, y = self.ctx.embed("val")
            emb, y = emb.float(), y.to(emb.device)
            best = None
            for t in self.args["grid"]:
                pred = (emb @ tau_normalize(self.w0.to(emb.device), t).t()).argmax(1)
                # balanced accuracy: the mean of per-class accuracies
                acc = torch.stack([(pred[y == c] == c).float().mean() for c in y.unique()]).mean().item()
                if best is None or acc > best[0] + 1e-12:
                    best = (acc, t)
            tau = best[1]
            self.ctx.log(f"tau_norm: tau = {tau:g} (balanced val accuracy {100 * best[0]:.2f}%)")
        elif self.args["search"]:
            self.ctx.log(f"tau_norm: no validation split (set data.val_per_class), using tau = {tau:g}")
        self.tau = tau
        with torch.no_grad():
            head.weight.copy_(tau_normalize(self.w0, tau))
            if getattr(head, "bias", None) is not None:
                head.bias.zero_()

    def chosen(self):
        return {"tau": self.tau, "search": False} if self.args["search"] and self.ctx.has_val else {}

    def state_dict(self):
        return {"tau": getattr(self, "tau", None)}
