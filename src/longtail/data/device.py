"""Host-to-device copies that never wait for the device.

A plain ``tensor.to("cuda")`` from pageable host memory blocks the host until the GPU has
finished everything queued before it: one hidden synchronisation per call. The few small
tensors made on the host each step (the augmentation's random draws, drawn from a CPU
generator so a run's draws do not depend on the device; the labels of a decoded batch) go
through pinned memory instead, which lets the copy be queued like a kernel.
"""

from __future__ import annotations

import functools

import torch


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` on ``device`` without a host-device synchronisation (a no-op on the same device)."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


@functools.lru_cache(maxsize=64)
def constant(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small constant tensor (normalisation statistics) made once per device, not per step."""
    return torch.tensor(values, dtype=dtype, device=device)
