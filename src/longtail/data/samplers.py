"""Epoch samplers: which training images an epoch visits, as one index tensor.

Every sampler is a class-level law ``P(class c)`` followed by a uniform draw inside the
class, except ``instance``, which is a plain shuffle (each image once per epoch). With
``n_c`` the class sizes and ``C`` the number of classes:

==================  =============================================================
``instance``        each image once: P(c) = n_c / N (a permutation, no replacement)
``class_balanced``  P(c) = 1 / C                      (Kang et al., ICLR 2020)
``sqrt``            P(c) ∝ n_c^{1/2}                  (Mahajan et al. 2018)
``progressive``     P_c(t) = (1 - t/T) n_c/N + (t/T) / C   (Kang et al., Eq. 3)
``reversed``        P(c) ∝ 1 / n_c                    (BBN, Zhou et al. CVPR 2020)
``class_aware``     classes in shuffled cycles, 4 images of a class in a row (below)
==================  =============================================================

``class_aware`` is the class-aware sampler of Kang et al.'s and MiSLAS's code
(``ClassAwareSampler(num_samples_cls=4)``, MiSLAS ``datasets/sampler.py``): an epoch holds
``max_c n_c · C`` images; the classes are visited in cycles, each cycle a fresh random
permutation of the classes (no class twice before every class once), and each visit takes the
next 4 images of that class from the class's own cycle (a fresh random permutation of its images
each time they are used up). So over an epoch every class gets the same number of visits (± 1),
and no image of a class repeats before all of them were drawn. One difference, ours: the
reference's cycles carry over from one epoch to the next (its iterators live as long as the
loader); here each epoch starts fresh cycles from its own seeded generator, so an epoch's draw is
a pure function of (seed, stage, epoch), as the resume guarantee needs.

An epoch draws as many samples as the pool holds. The draw is a pure function of the
generator it is given, so an epoch seeded by ``(seed, stage, epoch)`` is the same on every
rerun, on resume, and on every rank of a distributed run (each rank then takes a shard).
"""

from __future__ import annotations

import numpy as np
import torch

from longtail.errors import LongtailError

SAMPLERS = ("instance", "class_balanced", "sqrt", "progressive", "reversed", "class_aware")
CLASS_AWARE_RUN = 4  # images of a class in a row (the reference's num_samples_cls)


def class_probabilities(kind: str, counts, epoch: int = 0, epochs: int = 1) -> torch.Tensor:
    """``P(class c)`` for sampler ``kind`` (float64, sums to 1; classes with n_c = 0 get 0)."""
    n = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    present = n > 0
    if not present.any():
        raise LongtailError("cannot sample from an empty training set", "check the data config")
    if kind == "instance":
        w = n.clone()
    elif kind == "class_balanced":
        w = present.double()
    elif kind == "sqrt":
        w = n.sqrt()
    elif kind == "reversed":
        w = torch.where(present, 1.0 / n.clamp(min=1), torch.zeros_like(n))
    elif kind == "progressive":
        t = min(max(epoch / max(epochs, 1), 0.0), 1.0)
        return (1 - t) * n / n.sum() + t * present.double() / present.sum()
    else:
        raise LongtailError(f"unknown sampler '{kind}'", f"sampler must be one of {list(SAMPLERS)}")
    return w / w.sum()


def draw_epoch(labels: torch.Tensor, kind: str, generator: torch.Generator, num_classes: int,
               epoch: int = 0, epochs: int = 1, pool: torch.Tensor | None = None,
               num_samples: int | None = None) -> torch.Tensor:
    """Indices (into ``labels``) of one epoch drawn by sampler ``kind``.

    ``pool`` restricts the draw to a subset of indices (an IP-DPP subset, say). ``instance``
    returns a permutation of the pool; the others draw ``num_samples`` (default: pool size)
    with replacement: a class from :func:`class_probabilities`, then an image uniformly
    within it.
    """
    labels = torch.as_tensor(labels).cpu()
    pool = torch.arange(len(labels)) if pool is None else torch.as_tensor(pool, dtype=torch.int64).cpu()
    m = len(pool) if num_samples is None else num_samples
    if kind == "instance" and num_samples is None:
        return pool[torch.randperm(len(pool), generator=generator)]
    pool_labels = labels[pool]
    counts = torch.bincount(pool_labels, minlength=num_classes)
    if kind == "class_aware":
        return pool[class_aware_order(pool_labels, counts, generator, num_samples)]
    probs = class_probabilities(kind, counts, epoch, epochs)
    cls = torch.multinomial(probs.float(), m, replacement=True, generator=generator)
    order = torch.argsort(pool_labels, stable=True)  # pool positions grouped by class
    starts = torch.cumsum(counts, 0) - counts
    within = (torch.rand(m, generator=generator, dtype=torch.float64) * counts[cls]).long()
    return pool[order[starts[cls] + within]]


def class_aware_order(labels: torch.Tensor, counts: torch.Tensor, generator: torch.Generator,
                      num_samples: int | None = None, run: int = CLASS_AWARE_RUN) -> torch.Tensor:
    """Positions into ``labels`` of one class-aware epoch (module docstring): ``num_samples``
    (default ``max_c n_c · C`` over the present classes) images, in runs of ``run`` of one class,
    the classes visited in shuffled cycles, each class's images in shuffled cycles."""
    present = torch.nonzero(counts > 0).flatten()
    if not len(present):
        raise LongtailError("cannot sample from an empty training set", "check the data config")
    n = int(counts.max()) * len(present) if num_samples is None else num_samples
    visits = -(-n // run)
    cycles = -(-visits // len(present))
    visit_class = torch.cat([present[torch.randperm(len(present), generator=generator)] for _ in range(cycles)])[:visits]
    by_class = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    out = torch.empty(visits, run, dtype=torch.int64)
    for c in present.tolist():
        where = torch.nonzero(visit_class == c).flatten()
        need, n_c = len(where) * run, int(counts[c])
        stream = torch.cat([torch.randperm(n_c, generator=generator) for _ in range(-(-need // n_c))])[:need]
        out[where] = by_class[starts[c] + stream].view(len(where), run)
    return out.flatten()[:n]
