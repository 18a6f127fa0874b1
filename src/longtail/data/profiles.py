"""Long-tail profiles: how many images each class keeps, and which ones.

The standard CIFAR-LT construction (Cao et al. 2019; Cui et al. 2019) keeps, for class
``c`` of ``C``, ``n_c = floor(n_max * IF^(-c / (C - 1)))`` images: the *first* ``n_c`` of
that class in the dataset's original order, so the subset is the same everywhere.
"""

from __future__ import annotations

import math

import numpy as np

from longtail.errors import LongtailError


def exponential_counts(num_classes: int, n_max: int, imbalance_factor: float) -> list[int]:
    """``n_c = floor(n_max * IF^(-c/(C-1)))`` for c = 0..C-1 (class 0 is the head)."""
    _check_profile_args(num_classes, n_max, imbalance_factor)
    if num_classes == 1:
        return [n_max]
    # float64 pow, then floor, as the reference CIFAR-LT code does (int() of a positive float).
    return [
        int(math.floor(n_max * imbalance_factor ** (-c / (num_classes - 1)) + 1e-9))
        for c in range(num_classes)
    ]


def step_counts(num_classes: int, n_max: int, imbalance_factor: float) -> list[int]:
    """First ``ceil(C/2)`` classes keep ``n_max``; the rest keep ``floor(n_max / IF)``."""
    _check_profile_args(num_classes, n_max, imbalance_factor)
    head = (num_classes + 1) // 2
    n_min = int(math.floor(n_max / imbalance_factor + 1e-9))
    return [n_max] * head + [n_min] * (num_classes - head)


PROFILES = {"exponential": exponential_counts, "step": step_counts}


def _check_profile_args(num_classes: int, n_max: int, imbalance_factor: float) -> None:
    if num_classes < 1:
        raise LongtailError(f"a long-tail profile needs at least one class, got {num_classes}")
    if n_max < 1:
        raise LongtailError(f"n_max must be >= 1, got {n_max}", "set data.max_per_class to a positive count")
    if not imbalance_factor >= 1:
        raise LongtailError(
            f"imbalance factor must be >= 1 (n_max / n_min), got {imbalance_factor}",
            "set data.imbalance_factor to 1 for a balanced set or e.g. 100 for CIFAR-LT IF 100",
        )


def select_first_per_class(labels: np.ndarray, counts: list[int], exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the first ``counts[c]`` images of each class, in original file order.

    ``exclude`` (boolean mask) marks images that may not be taken (a held-out validation
    split). Raises when a class cannot supply what the profile asks for, or ends up empty.
    """
    labels = np.asarray(labels)
    allowed = np.ones(len(labels), bool) if exclude is None else ~exclude
    chosen = []
    for c, n_c in enumerate(counts):
        pool = np.flatnonzero((labels == c) & allowed)
        if n_c == 0 or len(pool) == 0:
            raise LongtailError(
                f"class {c} is left with no training images (profile asks for {n_c}, {len(pool)} available)",
                "lower data.imbalance_factor, raise data.max_per_class, or lower data.val_per_class",
            )
        chosen.append(pool[:n_c])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def shot_split(class_counts, many: int = 100, few: int = 20) -> dict[str, list[int]]:
    """Class ids in each shot group: many ``> many``, few ``< few``, medium in between."""
    counts = np.asarray(class_counts)
    return {
        "many": np.flatnonzero(counts > many).tolist(),
        "medium": np.flatnonzero((counts <= many) & (counts >= few)).tolist(),
        "few": np.flatnonzero(counts < few).tolist(),
    }


def half_split(class_counts) -> dict[str, list[int]]:
    """Head / tail halves by training count (ties broken by class id), and the tail-3.

    For 10-class sets where no class has < 20 images (PROTOCOL.md): head = the C/2 largest
    classes, tail = the C/2 smallest, tail3 = the three smallest.
    """
    counts = np.asarray(class_counts)
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    half = len(order) // 2
    return {
        "head": sorted(order[: len(order) - half]),
        "tail": sorted(order[len(order) - half:]),
        "tail3": sorted(order[-3:]) if len(order) >= 3 else sorted(order),
    }
