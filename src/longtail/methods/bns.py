"""BNS stage 1 (representation learning) and the linear-probing classifier stage
(Lin & Yuan 2025, §4.1; the linear probe is their representation metric)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from longtail.losses.bns import bns_code_loss, bns_paper_loss
from longtail.methods.base import Batch, Method, register
from longtail.methods.ipdpp import draw_subset
from longtail.seeds import derive_seed


def projection_head(in_dim: int, out_dim: int, hidden: int = 0) -> nn.Module:
    """SimCLR's projection MLP (Chen et al. 2020): Linear → ReLU → Linear, ``hidden`` units
    wide (0: as wide as the features, SimCLR's choice; the BNS authors' models_simclr.py: 2048)."""
    hidden = hidden or in_dim
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))


@register
class BNS(Method):
    """Balanced Negative Sampling: two views → backbone → pool → projection head → BNS loss
    (:mod:`longtail.losses.bns`). ``form: code`` (default; the released code) or ``paper``.
    Trains the backbone and the projection head; the classifier head is left to a later
    stage (``linear_probe`` or ``ipdpp``)."""

    id = "bns"
    batch_coupled = "BNS draws its negatives from the micro-batch, not from the whole batch"
    params = {"form": "code", "temperature": 0.5, "proj_dim": 128, "proj_hidden": 0, "negatives_per_class": 1.0}

    def prepare(self):
        if self.args["form"] not in ("code", "paper"):
            from longtail.errors import LongtailError

            raise LongtailError(f"bns: form '{self.args['form']}' is not 'code' or 'paper'", "set method_args.form")
        self.proj = projection_head(self.ctx.model.feature_dim, int(self.args["proj_dim"]), int(self.args["proj_hidden"])).to(self.ctx.device)
        for p in self.ctx.model.head.parameters():
            p.requires_grad_(False)  # the classifier is not part of the representation stage

    def modules(self):
        return [self.proj]

    def training_step(self, model, batch: Batch) -> torch.Tensor:
        if batch.view is None:
            raise RuntimeError("BNS needs two views: the engine must provide Batch.view")
        # transform_features lets representation-stage plug-ins (PIF) act on both views
        z1 = self.proj(model.pool(self.outer.transform_features(model.features(batch.x), batch)))
        z2 = self.proj(model.pool(self.outer.transform_features(model.features(batch.view()), batch)))
        # the loss sees the global batch: on W ranks every rank computes it over the gathered
        # projections (gradients return to the rank that made them; DDP then averages)
        gather = self.ctx.gather
        z1, z2, y = gather(z1), gather(z2), gather(batch.y)
        t = self.args["temperature"]
        if self.args["form"] == "code":
            return bns_code_loss(torch.cat([z1, z2]), torch.cat([y, y]), t)
        return bns_paper_loss(z1, z2, y, t, self.args["negatives_per_class"])

    def state_dict(self):
        return {"proj": self.proj.state_dict()}

    def load_state_dict(self, state):
        self.proj.load_state_dict(state["proj"])


@register
class LinearProbe(Method):
    """A new linear classifier on the frozen backbone, plain CE on the instance sampler.

    ``per_class: n`` > 0 trains it on a class-balanced subset instead, as the BNS authors'
    probing scripts do (``sample_balanced_subset``): every class with more than n images cut to
    n drawn uniformly at random, once, from the run's seed; smaller classes whole."""

    id = "linear_probe"
    params = {"per_class": 0}
    stage_defaults = {"sampler": "instance", "train": "head", "reinit_head": True}

    def prepare(self):
        n = int(self.args["per_class"])
        self.subset = None
        if n > 0:
            rng = np.random.default_rng(derive_seed(self.ctx.seed, "probe", self.ctx.stage_index))
            self.subset = torch.from_numpy(draw_subset(self.ctx.train_labels.cpu().numpy(), n, rng, "random"))
            self.ctx.log(f"linear_probe: {len(self.subset)} training images, at most {n} a class")

    def sample_pool(self):
        return self.subset
