"""Losses in float32 inside an autocast region.

Under ``torch.autocast`` a matmul runs in bf16/fp16 whatever its inputs' dtype: ``.float()`` on
a loss's inputs does not keep its similarities (BNS), class means (PIF) or cosine logits in
float32. :func:`fp32` switches autocast off for the function it wraps and casts floating inputs
to float32, so a loss is computed exactly as in an fp32 run.
"""

from __future__ import annotations

import functools

import torch


def _up(v):
    return v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v


def fp32(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next((a.device.type for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), "cpu")
        with torch.autocast(device, enabled=False):
            return fn(*(_up(a) for a in args), **{k: _up(v) for k, v in kwargs.items()})

    return wrapper
