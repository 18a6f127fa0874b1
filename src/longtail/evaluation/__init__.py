"""Evaluation: metrics, plots and reports."""

from longtail.evaluation.metrics import compute_metrics, confusion_matrix, expected_calibration_error, per_class_accuracy

__all__ = ["compute_metrics", "confusion_matrix", "expected_calibration_error", "per_class_accuracy"]
