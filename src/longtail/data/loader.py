"""Batches of uint8 images for a given index order.

In-memory sets: the images already sit on the training device, so a batch is one index
operation. File-backed sets: a ``torch.utils.data.DataLoader`` decodes the epoch's order in
worker processes and collates fixed-size uint8 tensors; augmentation then runs on the batch
the same way for both.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from longtail.data.device import to_device
from longtail.data.images import LabeledImages


class _Ordered(Dataset):
    def __init__(self, images, order: torch.Tensor):
        self.images, self.order = images, order.tolist()

    def __len__(self):
        return len(self.order)

    def __getitem__(self, i):
        return self.images[self.order[i]]


class BatchSource:
    def __init__(self, data: LabeledImages, device: torch.device, workers: int = 4):
        self.data = data
        self.device = device
        self.workers = (os.cpu_count() or 1) if workers < 0 else workers
        self.labels = data.labels.to(device)
        self.images = data.images.to(device) if data.in_memory else data.images

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
        loader = DataLoader(_Ordered(self.images, order), batch_size=batch_size, shuffle=False,
                            num_workers=self.workers, pin_memory=self.device.type == "cuda",
                            persistent_workers=False)
        for i, x in enumerate(loader):
            idx = order[i * batch_size:(i + 1) * batch_size]
            yield x.to(self.device, non_blocking=True), to_device(self.data.labels[idx], self.device), idx
