"""Batches of uint8 images for a given index order.

Three kinds of image set, one interface (``BatchSource.batches``):

- in memory: the images already sit on the training device, so a batch is one index operation;
- prepared (:mod:`longtail.data.cache`): two threads read the next batches from the shards'
  memory maps while the device trains on the current one;
- files decoded every epoch (``data.cache: false``): a ``DataLoader`` whose worker processes
  decode with Pillow, kept alive across epochs (``persistent_workers``). Workers hand back
  numpy arrays, which travel through a pipe, not tensors, which would travel through
  ``/dev/shm``: containers often give it 64 MB, less than a few batches of ImageNet images.

Augmentation then runs on the batch the same way for all three.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from longtail.data.cache import CachedImages
from longtail.data.device import to_device
from longtail.data.images import LabeledImages

READ_AHEAD = 3  # batches read before they are needed (prepared sets)


class _Decoded(Dataset):
    """``FileImages`` as numpy arrays (see the module docstring for why not tensors)."""

    def __init__(self, files):
        self.files = files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return self.files.decode(i)


class _EpochBatches(Sampler):
    """The batches of the epoch in progress, set before each pass: one ``DataLoader`` (and its
    workers) serves every epoch."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def _stack(items):
    return np.stack(items)


class BatchSource:
    def __init__(self, data: LabeledImages, device: torch.device, workers: int = 4):
        self.data = data
        self.device = device
        self.workers = (os.cpu_count() or 1) if workers < 0 else workers
        self.labels = data.labels.to(device)
        self.images = data.images.to(device) if data.in_memory else data.images
        self._loader = None

    def __len__(self) -> int:
        return len(self.data)

    def batches(self, order: torch.Tensor, batch_size: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(images uint8, labels, indices)`` for consecutive slices of ``order``,
        starting at batch ``start``."""
        order = order[start * batch_size:]
        if isinstance(self.images, torch.Tensor):
            order_dev = order.to(self.device)  # once an epoch
            for i in range(0, len(order), batch_size):
                idx = order_dev[i:i + batch_size]
                yield self.images[idx], self.labels[idx], order[i:i + batch_size]
            return
        slices = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        reads = self._read_ahead(slices) if isinstance(self.images, CachedImages) else self._decode(slices)
        for idx, x in zip(slices, reads):
            yield x.to(self.device, non_blocking=True), to_device(self.data.labels[idx], self.device), idx

    def _pinned(self, a: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(a)
        return x.pin_memory() if self.device.type == "cuda" else x

    def _read_ahead(self, slices) -> Iterator[torch.Tensor]:
        # numpy's copy out of the memory map releases the GIL: the reads overlap the step
        with ThreadPoolExecutor(2) as pool:
            pending = deque(pool.submit(self._read, s) for s in slices[:READ_AHEAD])
            for k in range(len(slices)):
                x = pending.popleft().result()
                if k + READ_AHEAD < len(slices):
                    pending.append(pool.submit(self._read, slices[k + READ_AHEAD]))
                yield x

    def _read(self, idx: torch.Tensor) -> torch.Tensor:
        return self._pinned(self.images.read(idx.numpy()))

    def _decode(self, slices) -> Iterator[torch.Tensor]:
        if self._loader is None:
            self._sampler = _EpochBatches()
            self._loader = DataLoader(_Decoded(self.images), batch_sampler=self._sampler, num_workers=self.workers,
                                      collate_fn=_stack, persistent_workers=self.workers > 0)
        self._sampler.batches = [s.tolist() for s in slices]
        for a in self._loader:
            yield self._pinned(a)
