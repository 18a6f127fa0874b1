"""Balanced Negative Sampling (BNS) representation losses (Lin & Yuan, NeurIPS 2025, §4.1).

A logistic (negative-sampling) mutual-information loss over two augmented views: each
anchor is pulled towards its other view and its same-class samples and pushed away from
other classes, so that maximising within-class mutual information minimises intra-class
distance (their Thm 4.1). Two forms, selected by ``form`` in the BNS method:

**code form** (the authors' released code; it produced the published numbers). Over the 2B
L2-normalised projections z of a batch (both views), with ``S_ij = exp(z_iᵀz_j / τ)``::

    pos_i = mean_{j ≠ i, y_j = y_i} S_ij          neg_i = (1 / 2B) Σ_{y_j ≠ y_i} S_ij
    L = −mean_i [ log σ(pos_i) + log σ(−neg_i) ]

**paper form** (§4.1): for anchor i with key ``v_i`` (its second view), queries
``q ∈ {q_i} ∪ Q⁺`` (the first views of i and of its m same-class batch members) and n
negative keys::

    L(i) = −1/(m+1) Σ_q [ log σ(qᵀv_i/τ) + Σ_{v⁻} log σ(−qᵀv⁻/τ) ]

with the negatives drawn *equally from every other class* in the batch, not in proportion to
class frequency. We use the exact expectation of that draw (each other class present in the
batch contributes ``negatives_per_class`` times the mean of its members' terms), which has
the expected value and gradient of the sampled loss without its variance; the weights are
:func:`balanced_negative_weights`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from longtail.losses.precision import fp32


@fp32
def bns_code_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Code form. ``z``: 2B × D projections (both views stacked), ``labels``: 2B."""
    z = F.normalize(z.float(), dim=1)
    n = len(z)
    sim = torch.exp(z @ z.t() / temperature)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    pos_mask = (same & ~eye).float()
    pos = (pos_mask * sim).sum(1) / pos_mask.sum(1).clamp(min=1)
    neg = ((~same).float() * sim).sum(1) / n
    return -(F.logsigmoid(pos) + F.logsigmoid(-neg)).mean()


def balanced_negative_weights(labels: torch.Tensor, negatives_per_class: float = 1.0) -> torch.Tensor:
    """``W[i, j]`` = weight of key j as a negative of anchor i: 0 for ``y_j = y_i``, else
    ``negatives_per_class / |{l : y_l = y_j}|``, so every other class present carries the
    same total weight, whatever its frequency in the batch."""
    same = labels[:, None] == labels[None, :]
    class_size = same.sum(1).float()  # batch members sharing j's label (incl. j)
    return (~same).float() * (negatives_per_class / class_size)[None, :]


@fp32
def bns_paper_loss(q: torch.Tensor, v: torch.Tensor, labels: torch.Tensor, temperature: float = 0.5,
                   negatives_per_class: float = 1.0) -> torch.Tensor:
    """Paper form. ``q``: B × D first-view projections (queries), ``v``: B × D second-view
    projections (keys), ``labels``: B. Mean of L(i) over anchors."""
    q = F.normalize(q.float(), dim=1)
    v = F.normalize(v.float(), dim=1)
    same = (labels[:, None] == labels[None, :]).float()  # row i: i's query set {q_i} ∪ Q⁺
    # positive term for (query a, anchor i): log σ(q_a · v_i / τ), used where y_a = y_i
    qv = q @ v.t() / temperature  # qv[a, j] = q_a · v_j / τ
    pos = F.logsigmoid(qv).t()  # pos[i, a] = log σ(q_a · v_i / τ)
    # negative term for query a: Σ_j W[i, j] log σ(−q_a · v_j / τ); W depends on the anchor's class,
    # and every query of anchor i shares that class
    w = balanced_negative_weights(labels, negatives_per_class)  # B × B over keys j
    neg_terms = F.logsigmoid(-qv)  # [a, j]
    neg = w @ neg_terms.t()  # neg[i, a] = Σ_j W[i, j] log σ(−q_a · v_j / τ)
    per_anchor = (same * (pos + neg)).sum(1) / same.sum(1)
    return -per_anchor.mean()
