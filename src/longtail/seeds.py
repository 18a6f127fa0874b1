"""Seeds derived from keys, so every random stream of a run is named and reproducible."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(*keys) -> int:
    """A 63-bit seed from any keys, e.g. ``derive_seed(seed, "stage", 1, "epoch", 7)``."""
    return int.from_bytes(hashlib.sha256(repr(keys).encode()).digest()[:8], "little") >> 1


def generator(*keys) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*keys))
