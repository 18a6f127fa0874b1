"""Multi-process training on PyTorch's own distributed engine (``torchrun``).

``torchrun --nproc_per_node N -m longtail train CONFIG`` sets RANK / WORLD_SIZE / LOCAL_RANK;
the engine then initialises the process group (NCCL on GPU, gloo on CPU), wraps the training
step in ``DistributedDataParallel``, gives every rank a disjoint shard of the same global
epoch draw, gathers evaluation predictions from all ranks, and keeps logging, checkpoints and
outputs on rank 0. Nothing here communicates by itself: it calls ``torch.distributed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device | None]:
    """Join the process group when launched by torchrun; returns the rank's device (None:
    choose as usual)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:  # before the process group: NCCL binds each rank to the current device
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", **({"device_id": device} if use_cuda else {}))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local), device


def shard(order: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's part of a global epoch order: positions ``rank, rank + W, …`` after the
    order is padded (wrapping around, as DistributedSampler does) to a multiple of W, so every
    rank takes the same number of steps. Step s of all ranks together covers exactly the
    single-process batch s of size ``W × per-rank batch``."""
    if not info.active:
        return order
    pad = (-len(order)) % info.world
    if pad:
        order = torch.cat([order, order[:pad]])
    return order[info.rank::info.world]


def gather_rows(local: torch.Tensor, positions: torch.Tensor, total: int, info: DistInfo) -> torch.Tensor:
    """Reassemble per-rank rows (``local[i]`` belongs at ``positions[i]``) into one
    ``total``-row tensor on every rank; each position is filled exactly once."""
    if not info.active:
        return local
    sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(info.world)]
    dist.all_gather(sizes, torch.tensor([len(local)], device=local.device))
    width = int(max(s.item() for s in sizes))
    pad = torch.zeros((width - len(local), *local.shape[1:]), dtype=local.dtype, device=local.device)
    bufs = [torch.empty((width, *local.shape[1:]), dtype=local.dtype, device=local.device) for _ in range(info.world)]
    dist.all_gather(bufs, torch.cat([local, pad]))
    pos_pad = torch.cat([positions.to(local.device), torch.full((width - len(positions),), -1, device=local.device, dtype=torch.long)])
    pos_bufs = [torch.empty(width, dtype=torch.long, device=local.device) for _ in range(info.world)]
    dist.all_gather(pos_bufs, pos_pad)
    out = torch.empty((total, *local.shape[1:]), dtype=local.dtype, device=local.device)
    for b, p, s in zip(bufs, pos_bufs, sizes):
        n = int(s.item())
        out[p[:n]] = b[:n]
    return out


class _AllGather(torch.autograd.Function):
    """y = [x_0; x_1; ...; x_{R-1}] (every rank's rows, rank order). Every rank's loss L_r
    reads all of y, so the total loss L = sum_r L_r has dL/dx_r = sum_r' (dL_r'/dy)[rows of r]:
    the backward pass sums the gradient over ranks (all-reduce) and keeps this rank's rows.
    (``torch.distributed.nn.functional.all_gather`` does the same and is deprecated.)"""

    @staticmethod
    def forward(ctx, x):
        ctx.rank, ctx.world, ctx.rows = dist.get_rank(), dist.get_world_size(), len(x)
        parts = [torch.empty_like(x) for _ in range(ctx.world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def all_gather_with_grad(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Concatenate ``x`` (the same number of rows on every rank) from every rank in rank order,
    keeping the autograd graph: the backward pass returns to each rank the gradient of its own
    rows, summed over ranks."""
    if not info.active:
        return x
    return _AllGather.apply(x)


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.active:
        return obj
    box = [obj if info.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """Leave the process group once every rank is done. The barrier first: a rank that tears
    its gloo connections down while another still talks on them can abort that one ("terminate
    called without an active exception")."""
    if info.active and dist.is_initialized():
        import gc

        gc.collect()  # a DistributedDataParallel wrapper no longer referenced, in a cycle, goes first
        dist.barrier()
        dist.destroy_process_group()


class TrainStep(nn.Module):
    """The model and the method's own modules as one module whose ``forward`` is the method's
    training step, so DistributedDataParallel sees (and synchronises) every parameter the step
    uses, however the method calls into the model."""

    def __init__(self, model: nn.Module, method):
        super().__init__()
        self.model = model
        self.extras = nn.ModuleList(method.modules())
        self.method = method

    def forward(self, batch):
        return self.method.training_step(self.model, batch)


def wrap_step(model: nn.Module, method, info: DistInfo, device: torch.device) -> nn.Module:
    step = TrainStep(model, method)
    if not info.active:
        return step
    from torch.nn.parallel import DistributedDataParallel as DDP

    # every parameter that requires a gradient takes part in every step (frozen parts have
    # requires_grad off), so DDP need not search the graph for unused ones each step
    return DDP(step, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False)
