"""Labelled image sets as the engine sees them.

Small sets live in memory as one ``uint8`` tensor ``N x C x H x W`` so a batch is an index
into it (no per-image Python). Large sets (ImageNet-LT, iNaturalist) are a list of files,
decoded once into shards (:mod:`longtail.data.cache`) or, with ``data.cache: false``, by
worker processes every epoch, into fixed-size ``uint8`` images; augmentation then runs on
whole batches either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from longtail.errors import LongtailError


class FileImages:
    """Images on disk, decoded with Pillow on access to ``channels x size x size`` uint8.

    Decoding resizes the shorter side to ``size`` and centre-crops, so every item has the
    same shape and batches stack; random crops happen later, on the batch.
    """

    def __init__(self, paths: list[Path], size: int, channels: int = 3):
        self.paths = list(paths)
        self.size = size
        self.channels = channels

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), self.channels, self.size, self.size)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.decode(i))

    def decode(self, i: int) -> np.ndarray:
        """Image ``i`` as a ``channels x size x size`` uint8 array."""
        from PIL import Image, UnidentifiedImageError

        path = self.paths[i]
        try:
            with Image.open(path) as im:
                im = im.convert("L" if self.channels == 1 else "RGB")
                w, h = im.size
                scale = self.size / min(w, h)
                im = im.resize((max(self.size, round(w * scale)), max(self.size, round(h * scale))), Image.BILINEAR)
                w, h = im.size
                left, top = (w - self.size) // 2, (h - self.size) // 2
                im = im.crop((left, top, left + self.size, top + self.size))
                arr = np.array(im, dtype=np.uint8)  # a writable copy: torch.from_numpy warns on PIL's read-only buffer
        except FileNotFoundError:
            raise LongtailError(f"image listed but missing: {path}", "check the list file and data.root") from None
        except (UnidentifiedImageError, OSError) as e:
            raise LongtailError(f"corrupt image {path}: {e}", "re-save or remove this file (from its folder or list file)") from None
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return np.ascontiguousarray(arr.transpose(2, 0, 1))

    def subset(self, idx) -> "FileImages":
        return FileImages([self.paths[i] for i in np.asarray(idx).tolist()], self.size, self.channels)

    def materialize(self) -> torch.Tensor:
        """Decode everything into one in-memory tensor (for small file sets)."""
        return torch.stack([self[i] for i in range(len(self))]) if len(self) else torch.zeros(self.shape, dtype=torch.uint8)


@dataclass
class LabeledImages:
    """Images (uint8 tensor ``N x C x H x W`` or :class:`FileImages`) and int64 labels."""

    images: torch.Tensor | FileImages
    labels: torch.Tensor
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    # the network's input size where the stored images are larger (data.resize > data.image_size):
    # training crops this size out of them, evaluation their centre; 0 = the stored size
    crop: int = 0

    def __post_init__(self):
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        if len(self.images) != len(self.labels):
            raise LongtailError(f"{len(self.images)} images but {len(self.labels)} labels", "the image and label files do not belong together")
        if len(self.labels):
            lo, hi = int(self.labels.min()), int(self.labels.max())
            if lo < 0 or hi >= self.num_classes:
                bad = lo if lo < 0 else hi
                raise LongtailError(
                    f"label {bad} out of range for {self.num_classes} classes",
                    "labels must be integers in [0, num_classes); check the label file or list file",
                )
        if not self.class_names:
            self.class_names = [str(c) for c in range(self.num_classes)]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.images, torch.Tensor)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        """The network's input size (the stored size unless ``crop`` is set)."""
        return self.crop or self.images.shape[-1]

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, idx) -> "LabeledImages":
        idx_t = torch.as_tensor(np.asarray(idx), dtype=torch.int64)
        images = self.images[idx_t] if self.in_memory else self.images.subset(idx_t.numpy())
        return LabeledImages(images, self.labels[idx_t], self.num_classes, list(self.class_names), self.crop)
