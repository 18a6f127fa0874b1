"""IP-DPP stage 2 (Lin & Yuan 2025, §4.2): fine-tune on a class-balanced, information-rich
subset drawn by a k-DPP and redrawn with the current model every few epochs.

Every class with more than k training images is cut to exactly k by a k-DPP whose kernel
favours instances the model finds hard (information ``I_i = −log p_i``, p_i the softmax
probability of the true class); smaller classes stay whole. As in the authors' code, the
whole network is fine-tuned with a new linear head, the first subset is drawn with that new
head before training, and the subset is redrawn before epochs ``r−1, 2r−1, …`` (r =
``redraw_every``), except before the last.

``kernel``: ``ipdpp`` (the paper's diagonal-plus-rank-one kernel, ``scale`` n2 as coded or n),
``quality_diversity`` (an extension: ``L = diag(q) K diag(q)``, q = information, K the cosine
Gram matrix of pooled features; its rank is at most the feature dimension, so k may not
exceed it), or ``random`` (uniform under-sampling to k: the ablation).
"""

from __future__ import annotations

import numpy as np
import torch

from longtail import dpp
from longtail.seeds import derive_seed
from longtail.errors import LongtailError
from longtail.methods.base import Method, register


def draw_subset(labels: np.ndarray, k: int, rng: np.random.Generator, kernel: str = "ipdpp", p: np.ndarray | None = None,
                scale: str = "n2", features: np.ndarray | None = None) -> np.ndarray:
    """Indices of the IP-DPP training subset: each class with more than k items cut to k."""
    labels = np.asarray(labels)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) <= k:
            keep.append(idx)
            continue
        if kernel == "random":
            chosen = rng.choice(len(idx), k, replace=False)
        elif kernel == "ipdpp":
            d, u = dpp.ipdpp_kernel(p[idx], scale)
            try:
                chosen = dpp.sample_kdpp_diag_rank1(d, u, k, rng)
            except ValueError as e:  # a degenerate kernel: every p = 1 under scale n
                raise LongtailError(f"ipdpp: class {int(c)}'s kernel admits no {k}-subset ({e})",
                                    "use method_args.scale: n2 (the authors' code), whose diagonal stays positive") from None
        elif kernel == "quality_diversity":
            if features.shape[1] < k:
                raise LongtailError(f"ipdpp: the quality_diversity kernel has rank <= the feature dimension "
                                    f"{features.shape[1]} < k = {k}, so no k-subset has positive probability",
                                    "use kernel: ipdpp, or a k no larger than the feature dimension")
            info = -np.log(np.clip(p[idx], 1e-12, 1.0))
            b = dpp.quality_diversity_factor(features[idx], info + 1e-6)
            chosen = dpp.sample_kdpp_dual(b, k, rng)
        else:
            raise LongtailError(f"ipdpp: unknown kernel '{kernel}'", "use ipdpp, quality_diversity or random")
        keep.append(idx[np.sort(chosen)])
    return np.sort(np.concatenate(keep))


@register
class IPDPP(Method):
    id = "ipdpp"
    one_head = "it scores each image by one head's softmax of its pooled features"
    params = {"k": 0, "redraw_every": 10, "kernel": "ipdpp", "scale": "n2"}
    stage_defaults = {"sampler": "instance", "train": "all", "reinit_head": True}

    def prepare(self):
        counts = self.ctx.class_counts.long().cpu()
        k = int(self.args["k"]) or int(torch.median(counts).item())
        if k < 1:
            raise LongtailError(f"ipdpp: k = {k} must be >= 1", "set method_args.k")
        self.k = k
        self.ctx.log(f"ipdpp: k = {k} per class ({'the median class size' if not self.args['k'] else 'set'}), "
                     f"kernel {self.args['kernel']}")
        self.subset: torch.Tensor | None = None

    def _due(self, epoch: int) -> bool:
        r = int(self.args["redraw_every"])
        return self.subset is None or (r > 0 and (epoch + 1) % r == 0 and epoch + 1 != self.ctx.epochs)

    def on_epoch_start(self, epoch: int):
        if not self._due(epoch):
            return
        model = self.ctx.model
        emb, labels = self.ctx.embed("train")
        with torch.no_grad():
            p = torch.softmax(model.head(emb).float(), 1).gather(1, labels.to(emb.device)[:, None]).squeeze(1)
        rng = np.random.default_rng(derive_seed(self.ctx.seed, "ipdpp", self.ctx.stage_index, epoch))
        feats = emb.cpu().numpy() if self.args["kernel"] == "quality_diversity" else None
        sub = draw_subset(labels.cpu().numpy(), self.k, rng, self.args["kernel"], p.cpu().double().numpy(),
                          self.args["scale"], feats)
        # every rank gathered the same p; rank 0's draw is the one all ranks train on
        self.subset = torch.from_numpy(self.ctx.broadcast(sub))

    def sample_pool(self):
        return self.subset

    def state_dict(self):
        return {"subset": self.subset}

    def load_state_dict(self, state):
        # a checkpoint is loaded onto the training device; the subset indexes CPU labels
        sub = state.get("subset")
        self.subset = sub.cpu() if sub is not None else None
