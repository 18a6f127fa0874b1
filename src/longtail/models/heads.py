"""Classifier heads: the last step from pooled feature to logits.

``linear``   z = W x + b
``cosine``   z_c = cos(w_c, x)  (L2-normalised weights and features; LDAM, Cao et al. 2019;
             the scale s is applied by the loss)
``lws``      z_c = f_c · (w_c^T x + b_c) with only f trained (Kang et al., ICLR 2020, §4)
τ-normalisation (Kang et al., Eq. 4) rescales a head's weights in place: see :func:`tau_normalize`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LinearHead(nn.Linear):
    kind = "linear"


class CosineHead(nn.Module):
    kind = "cosine"

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        # LDAM's NormedLinear init: uniform, renormalised columns
        self.weight.data.uniform_(-1, 1).renorm_(2, 0, 1e-5).mul_(1e5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # cosines in float32 even under autocast: bf16 keeps 3 significant digits, and the loss
        # multiplies them by s = 30
        with torch.autocast(x.device.type, enabled=False):
            return F.normalize(x.float(), dim=1) @ F.normalize(self.weight.float(), dim=1).t()


class LWSHead(nn.Module):
    """Learnable weight scaling around a frozen head: z = f ⊙ head(x)."""

    kind = "lws"

    def __init__(self, base: nn.Module, num_classes: int):
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.scales = nn.Parameter(torch.ones(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) * self.scales


class ExpertHeads(nn.Module):
    """One head per expert of a multi-expert backbone (RIDE): ``forward`` takes the pooled
    embeddings ``B × E × C`` and returns the experts' mean logits (RIDE's ``final_out``, what
    evaluation reads); :meth:`experts` the per-expert logits ``B × E × K`` (what RIDE's loss
    reads)."""

    def __init__(self, kind: str, in_features: int, num_classes: int, num_experts: int):
        super().__init__()
        self.kind = kind
        self.heads = nn.ModuleList([HEADS[kind](in_features, num_classes) for _ in range(num_experts)])

    def experts(self, emb: torch.Tensor) -> torch.Tensor:
        return torch.stack([h(emb[:, i]) for i, h in enumerate(self.heads)], dim=1)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.experts(emb).mean(dim=1)


HEADS = {"linear": LinearHead, "cosine": CosineHead}


def make_head(kind: str, in_features: int, num_classes: int, num_experts: int = 1) -> nn.Module:
    from longtail.errors import LongtailError

    if kind not in HEADS:
        raise LongtailError(f"unknown head '{kind}'", f"model.head must be one of {sorted(HEADS)}")
    return HEADS[kind](in_features, num_classes) if num_experts == 1 else ExpertHeads(kind, in_features, num_classes, num_experts)


@torch.no_grad()
def tau_normalize(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """τ-normalised weights ``w_c / ||w_c||^τ`` (Kang et al. 2020, Eq. 4); τ = 0 is the identity."""
    norms = weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return weight / norms.pow(tau)
