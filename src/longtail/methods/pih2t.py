"""PI-H2T (Li et al., arXiv 2506.00625, extending H2T, AAAI 2024, arXiv 2306.06963) as plug-ins
on any base method. Both halves edit the backbone's last feature map ``F ∈ R^{B×C×H×W}`` during
training only (``Method.transform_features``); at evaluation nothing is fused, so the
deployed model is exactly the base architecture.

- ``+h2tf`` (head-to-tail fusion, classifier stage; H2T §3): each step draws two batches, the
  stage's own sampler (class-balanced in cRT: tail-heavy; its labels are the targets) and a
  ``head`` batch from the instance sampler (head-heavy). One random channel subset I with
  ``|I| = ⌊ρ C⌋`` (the reference code's ``int(beta * C)``) is drawn per step and
  ``F_t[:, I] ← F_h[:, I]``; pooling, the classifier and the base method's loss follow.
- ``+pif`` with ``form: equivariant`` (PI-H2T's configs): the authors' PIF, a learned
  channel-permutation-equivariant layer on the last feature map that becomes part of the model
  (:mod:`longtail.models.pif`; H2T repository commit 3dafa70). It is installed at the start of
  the stage, trained with the backbone, kept at evaluation and in later stages (which fuse the
  channels it outputs), and folded into a linear head for ``predict`` / ``export``.
- ``+pif`` with ``form: class_mean`` (the default, so configs and results written before the
  authors' form was known keep their meaning; **our own reading**, not the authors'): with
  ``S_i = {j : y_j = y_i}`` the batch members of i's class,
  ``F_i[:, I] ← (1/|S_i|) Σ_{j∈S_i} F_j[:, I]``: part of every sample's representation is
  its class's batch mean, a symmetric (permutation-invariant) function of the same-class set,
  so the classifier must recognise the class from any member's channels and the gradient
  pulls members towards their mean. Our reading: the paper's §3 text was not reachable here
  (docs/methods/pih2t.md says what is confirmed and what was decided).
- Token maps (a ViT's ``B × N × D``) fuse embedding channels: ``I ⊂ {1..D}``, on every token.
  Multi-expert maps (RIDE's ``B × E × C × H × W``) fuse each expert's channels with a subset
  drawn for that expert (H2T's ``methods.py:40-46``).
- ``+pih2t``: PIF in a stage that trains the backbone, H2TF in a classifier stage, so one
  plug-in id serves both stages of a pipeline (``ce+pih2t`` → ``crt+pih2t``); arguments
  ``{pif: {form, ratio}, h2tf: {ratio, head_sampler}}``; its PIF is the authors' form unless
  ``pif: {form: class_mean}``.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from longtail.errors import LongtailError
from longtail.methods.base import Batch, Plugin, register
from longtail.losses.precision import fp32
from longtail.models.pif import NECKS, ScalePIF

PIF_FORMS = ("class_mean", "equivariant", "affine", "scale")


def channels_first(fmap: torch.Tensor) -> torch.Tensor:
    """A token map ``B × N × D`` (ViT) as ``B × D × N``, and back: fusion then takes embedding
    channels of every token, as it takes feature-map channels of every position of a CNN's
    ``B × C × H × W`` (returned as it is)."""
    return fmap.transpose(1, 2) if fmap.ndim == 3 else fmap


def fused_channel_count(channels: int, ratio: float) -> int:
    """``⌊ρ C⌋`` (a small epsilon guards against ρ·C landing just under an integer)."""
    return int(math.floor(ratio * channels + 1e-9))


def random_channels(fmap: torch.Tensor, ratio: float) -> torch.Tensor:
    """One random subset of ``⌊ρ C⌋`` channel indices (torch's global generator, which the
    engine seeds identically on every rank, so all ranks fuse the same channels)."""
    return torch.randperm(fmap.shape[1], device=fmap.device)[: fused_channel_count(fmap.shape[1], ratio)]


def head_to_tail_fuse(f_tail: torch.Tensor, f_head: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """``F_t`` with the channels ``channels`` taken from ``F_h`` (a new tensor; inputs untouched).
    The two batches are paired by position (B_t may exceed B_h only if the head batch is
    repeated by the caller)."""
    out = f_tail.clone()
    out[:, channels] = f_head[: f_tail.shape[0], channels]
    return out


@fp32
def class_mean_fuse(fmap: torch.Tensor, labels: torch.Tensor, channels: torch.Tensor, num_classes: int,
                    gather=lambda t: t) -> torch.Tensor:
    """``F_i[:, I] ← mean_{j: y_j = y_i} F_j[:, I]`` (a new tensor; differentiable).

    ``gather`` concatenates a tensor over ranks with gradients (identity in one process): the
    per-class sums and counts are summed over ranks, so the means are over the global batch."""
    sel = fmap[:, channels].flatten(1).float()  # B × (|I|·H·W)
    onehot = F.one_hot(labels, num_classes).to(sel.dtype)  # B × K
    sums = gather((onehot.T @ sel)[None]).sum(0)  # K × (|I|·H·W)
    counts = gather(onehot.sum(0)[None]).sum(0)
    means = sums / counts.clamp(min=1)[:, None]
    out = fmap.clone()
    out[:, channels] = means[labels].view(fmap.shape[0], len(channels), *fmap.shape[2:]).to(fmap.dtype)
    return out


def _check_ratio(plugin: str, ratio) -> None:
    if not 0 <= ratio <= 1:
        raise LongtailError(f"{plugin}: ratio {ratio} is outside [0, 1]",
                            f"set method_args.{plugin}.ratio (or method_args.pih2t.{plugin}.ratio) to a share of channels, e.g. 0.25")


def convex_weight(d: torch.Tensor) -> torch.Tensor:
    """H2Tv2's weight of the tail feature, ``p = 0.6 + 0.4 (2 / (1 + d) − 1)`` (H2T repository,
    commit f96309a, ``methods.py`` lines 50-67): 1 at d = 0, falling towards 0.2 as d grows."""
    return 0.6 + 0.4 * (2.0 / (1.0 + d) - 1.0)


def convex_distance(donor_emb: torch.Tensor, class_means: torch.Tensor, labels: torch.Tensor,
                    seen: torch.Tensor) -> torch.Tensor:
    """**Our reading** of H2Tv2's undefined ``d`` (the draft never defines it): for tail sample i
    of class y_i and its donor j (paired by position), the squared distance between the donor's
    pooled feature and class y_i's running mean pooled feature, over the mean squared norm of the
    batch's donor features, ``d_i = ||e_j − μ_{y_i}||² / mean_k ||e_k||²`` (scale-free: the same d
    whatever the feature scale). A donor that already looks like the tail class (d = 0) is not
    mixed in (p = 1); a far one is mixed in up to p = 0.2. A class with no mean yet gets d = 0."""
    dist = (donor_emb - class_means[labels]).pow(2).sum(1)
    scale = donor_emb.pow(2).sum(1).mean().clamp(min=1e-12)
    return torch.where(seen[labels], dist / scale, torch.zeros_like(dist))


@contextlib.contextmanager
def batchnorm_mode(module: torch.nn.Module, training: bool):
    """BatchNorm layers of ``module`` in training mode (running statistics updated) or
    evaluation mode (used, not updated) inside the block, each restored after."""
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training != training]
    for m in norms:
        m.train(training)
    try:
        yield
    finally:
        for m in norms:
            m.train(not training)


@register
class H2TF(Plugin):
    """H2T's head-to-tail fusion (module docstring). ``form: swap`` (the default; H2T's ``H2T``)
    replaces a ``ratio`` share of channels of each tail feature map with the donor's; ``form:
    convex`` (H2T's draft ``H2Tv2``) mixes all channels, ``p · F_t + (1 − p) · F_h``, with ``p``
    per sample from :func:`convex_weight` of :func:`convex_distance` (our reading of its ``d``),
    or a fixed ``p`` (``p: 1`` is its no-mixing control). ``donor_bn: eval`` passes the donor
    batch with BatchNorm in evaluation mode (the statistics untouched), a control of ours for
    what the donor pass does through BatchNorm."""

    id = "h2tf"
    batch_coupled = "H2TF draws one channel subset per micro-batch"
    params = {"ratio": 0.25, "head_sampler": "instance", "form": "swap", "p": -1.0, "donor_bn": "train"}
    extra_samplers = {"head": "instance"}

    def __init__(self, ctx, base, **args):
        super().__init__(ctx, base, **args)
        _check_ratio(self.id, self.args["ratio"])
        a = self.args
        if a["form"] not in ("swap", "convex"):
            raise LongtailError(f"h2tf: form {a['form']!r} is not a fusion form",
                                "set method_args.h2tf.form to 'swap' (H2T's channel swap) or 'convex' (its draft H2Tv2)")
        if a["donor_bn"] not in ("train", "eval"):
            raise LongtailError(f"h2tf: donor_bn {a['donor_bn']!r} is not 'train' or 'eval'",
                                "set method_args.h2tf.donor_bn to 'train' (as H2T) or 'eval' (statistics untouched)")
        if a["p"] != -1.0 and not 0 <= a["p"] <= 1:
            raise LongtailError(f"h2tf: p {a['p']} is outside [0, 1]", "set method_args.h2tf.p in [0, 1], or -1 for p from d")
        self.extra_samplers = {**self.extra_samplers, "head": self.args["head_sampler"]}
        self.class_sums = torch.zeros(ctx.num_classes, 0)  # the convex form's running class means
        self.class_counts = torch.zeros(ctx.num_classes)

    def transform_features(self, fmap: torch.Tensor, batch: Batch) -> torch.Tensor:
        fmap = super().transform_features(fmap, batch)
        if not self.ctx.model.training:
            return fmap
        head = batch.extra["head"]
        with torch.set_grad_enabled(not self.ctx.frozen_backbone and torch.is_grad_enabled()), \
                batchnorm_mode(self.ctx.model, False) if self.args["donor_bn"] == "eval" else contextlib.nullcontext():
            f_head = self.ctx.model.features(head.x)
        if self.args["form"] == "convex":
            return self._convex(fmap, f_head, batch.y)
        f_head = channels_first(f_head)
        f = channels_first(fmap)
        if f.ndim == 5:  # experts: each its own channel subset
            return torch.stack([head_to_tail_fuse(f[:, i], f_head[:, i], random_channels(f[:, i], self.args["ratio"]))
                                for i in range(f.shape[1])], dim=1)
        return channels_first(head_to_tail_fuse(f, f_head, random_channels(f, self.args["ratio"])))

    def _convex(self, fmap, f_head, labels):
        """``p_i F_t,i + (1 − p_i) F_h,i`` over every channel; the class means take the tail
        batch's pooled features (detached) after p is computed."""
        model = self.ctx.model
        f_head = f_head[: fmap.shape[0]]
        with torch.no_grad():
            tail_emb = model.pool(fmap).flatten(1).float()
            donor_emb = model.pool(f_head).flatten(1).float()
            if self.class_sums.shape[1] != tail_emb.shape[1]:  # the first step: the embedding's width
                self.class_sums = torch.zeros(self.ctx.num_classes, tail_emb.shape[1])
            self.class_sums = self.class_sums.to(tail_emb.device)
            self.class_counts = self.class_counts.to(tail_emb.device)
            if self.args["p"] >= 0:
                p = torch.full((fmap.shape[0],), float(self.args["p"]), device=fmap.device)
            else:
                means = self.class_sums / self.class_counts.clamp(min=1)[:, None]
                p = convex_weight(convex_distance(donor_emb, means, labels, self.class_counts > 0))
            self.class_sums.index_add_(0, labels, tail_emb)
            self.class_counts.index_add_(0, labels, torch.ones_like(labels, dtype=self.class_counts.dtype))
        p = p.to(fmap.dtype).view(-1, *([1] * (fmap.ndim - 1)))
        return p * fmap + (1 - p) * f_head

    def state_dict(self):
        return {**super().state_dict(), "class_sums": self.class_sums.cpu(), "class_counts": self.class_counts.cpu()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if "class_sums" in state:
            self.class_sums, self.class_counts = state["class_sums"], state["class_counts"]


@register
class PIF(Plugin):
    """``form: equivariant`` installs the authors' layer as ``model.neck`` (``ratio`` is then
    unused); ``form: class_mean`` fuses class means of a ``ratio`` share of channels."""

    id = "pif"
    batch_coupled = "PIF fuses with class means of the micro-batch"
    # value: form scale's fixed scale (0: the median |alpha| of the equivariant layer's initialisation)
    params = {"ratio": 0.25, "form": "class_mean", "value": 0.0}

    def __init__(self, ctx, base, **args):
        super().__init__(ctx, base, **args)
        _check_ratio(self.id, self.args["ratio"])
        form = self.args["form"]
        if form not in PIF_FORMS:
            raise LongtailError(f"pif: form {form!r} is not a PIF form",
                                "set method_args.pif.form to 'equivariant' (the authors' layer), 'class_mean' (our earlier "
                                "reading), or a control of the authors' layer: 'affine' (a learned scalar scale and offset), "
                                "'scale' (a fixed scale, method_args.pif.value)")
        if form in NECKS:
            if ctx.frozen_backbone:
                raise LongtailError(f"pif ({form}) learns with the backbone, and this stage freezes it",
                                    "use +pif in a stage with train: all; a classifier stage keeps the trained layer by itself")
            self.batch_coupled = base.batch_coupled  # one image at a time: nothing shared in the batch

    def prepare(self):
        super().prepare()
        model = self.ctx.model
        form = self.args["form"]
        if form in NECKS and model.neck is None:
            model.neck = (ScalePIF(self.args["value"]) if form == "scale" else NECKS[form]()).to(self.ctx.device)
            what = {"equivariant": "the authors' equivariant layer (25 parameters)",
                    "affine": "a learned scalar scale and offset (form affine, a control of ours)",
                    "scale": "a fixed scale (form scale, a control of ours)"}[form]
            self.ctx.log(f"pif: {what} is part of the model from this stage on (folded into a linear head for predict / export)")

    def transform_features(self, fmap: torch.Tensor, batch: Batch) -> torch.Tensor:
        fmap = super().transform_features(fmap, batch)
        if not self.ctx.model.training or self.args["form"] in NECKS:
            return fmap  # the layer runs inside model.features
        f = channels_first(fmap)
        if f.ndim == 5:  # experts' maps: their channels side by side
            b, e, c = f.shape[:3]
            return class_mean_fuse(f.flatten(1, 2), batch.y, random_channels(f.flatten(1, 2), self.args["ratio"]),
                                   self.ctx.num_classes, self.ctx.gather).view(b, e, c, *f.shape[3:])
        channels = random_channels(f, self.args["ratio"])
        return channels_first(class_mean_fuse(f, batch.y, channels, self.ctx.num_classes, self.ctx.gather))


@register
class PIH2T(Plugin):
    """PIF where the stage trains the backbone, H2TF where only the classifier trains."""

    id = "pih2t"
    params = {"pif": {}, "h2tf": {}}

    def __init__(self, ctx, base, **args):
        super().__init__(ctx, base, **args)
        pif_args = {"form": "equivariant", **self.args["pif"]}
        self.half = H2TF(ctx, base, **self.args["h2tf"]) if ctx.frozen_backbone else PIF(ctx, base, **pif_args)
        self.extra_samplers = self.half.extra_samplers
        self.batch_coupled = self.half.batch_coupled
        self.claim(base)  # the half claimed the base when it was built

    def prepare(self):
        self.half.prepare()

    def transform_features(self, fmap, batch):
        return self.half.transform_features(fmap, batch)
