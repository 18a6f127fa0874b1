"""Data: readers of real on-disk formats, long-tail profiles, samplers, batch augmentation."""

from longtail.data.datasets import DATASETS, Splits, build_splits
from longtail.data.images import FileImages, LabeledImages
from longtail.data.profiles import exponential_counts, half_split, shot_split, step_counts
from longtail.data.samplers import SAMPLERS, class_probabilities, draw_epoch

__all__ = [
    "DATASETS", "SAMPLERS", "FileImages", "LabeledImages", "Splits", "build_splits", "class_probabilities",
    "draw_epoch", "exponential_counts", "half_split", "shot_split", "step_counts",
]
