"""Activation checkpointing (``model.checkpointing: true``) for any backbone built of blocks.

Training keeps every intermediate activation for the backward pass; for a ResNeXt-50 at 224 px
that is most of the memory. With checkpointing, each residual block (every non-leaf child of an
``nn.Sequential``: ResNet stages, timm's ViT ``blocks``) keeps only its input, and its inside is
recomputed in the backward pass (``torch.utils.checkpoint``, non-reentrant): about one more
forward pass of compute for the memory of the block boundaries.

Recomputing a block runs its BatchNorm layers a second time, which would update their running
statistics twice; their statistics are restored after the recomputation, so a checkpointed
run's weights and statistics equal an ordinary run's. The state dict is unchanged (the blocks'
``forward`` is replaced on the instance, no wrapper module).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from longtail.errors import LongtailError


@contextlib.contextmanager
def _statistics_kept(module: nn.Module):
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None] for m in bns]
    try:
        yield
    finally:
        for m, old in zip(bns, saved):
            for b, v in zip([b for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None], old):
                b.copy_(v)


def _checkpointed(block: nn.Module) -> None:
    inner = block.forward

    def contexts():
        # (around the forward pass, around its recomputation in backward): checkpoint's own hook
        # for telling the two apart, so nothing outside the checkpointed function is mutated
        # (torch.compile cannot trace such a side effect and breaks the graph at every block)
        return contextlib.nullcontext(), _statistics_kept(block)

    def forward(*args):
        if not torch.is_grad_enabled():  # evaluation, or a frozen backbone under no_grad
            return inner(*args)
        if torch.compiler.is_compiling():
            # traced, the recomputation recomputes values only: buffer updates are applied once
            return checkpoint(inner, *args, use_reentrant=False)
        return checkpoint(inner, *args, use_reentrant=False, context_fn=contexts)

    block.forward = forward


def enable_checkpointing(backbone: nn.Module) -> int:
    """Checkpoint every block of ``backbone`` (module docstring); returns how many."""
    blocks = [child for parent in backbone.modules() if isinstance(parent, nn.Sequential)
              for child in parent.children() if not isinstance(child, nn.Sequential) and next(child.children(), None) is not None]
    if not blocks:
        raise LongtailError(f"model.checkpointing: {type(backbone).__name__} has no blocks in an nn.Sequential to checkpoint",
                            "set model.checkpointing: false for this backbone")
    for b in blocks:
        _checkpointed(b)
    return len(blocks)
