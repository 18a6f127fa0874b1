"""Metrics of long-tailed recognition, all accuracies in percent.

``overall``  top-1 accuracy over the test set (on the balanced test sets of the benchmarks this
             equals the mean per-class accuracy, reported as ``balanced`` too)
``many`` / ``medium`` / ``few``   mean per-class accuracy of the classes with > 100, 20-100,
             < 20 training images (None where a group is empty)
``head`` / ``tail`` / ``tail3``  mean per-class accuracy of the larger / smaller half of the
             classes by training count and of the three smallest classes (PROTOCOL.md)
``ece``      expected calibration error, 15 equal-width confidence bins (Guo et al. 2017, Eq. 3)
"""

from __future__ import annotations

import numpy as np
import torch

from longtail.data.profiles import half_split, shot_split


def confusion_matrix(pred, y, num_classes: int) -> np.ndarray:
    """``M[i, j]`` = number of test images of class i predicted as j."""
    pred, y = np.asarray(pred), np.asarray(y)
    return np.bincount(y * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Per-class recall in percent (NaN for a class absent from the test set)."""
    support = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, 100.0 * np.diag(cm) / support, np.nan)


def expected_calibration_error(confidence, correct, bins: int = 15) -> float:
    """``ECE = Σ_b |B_b|/n · |acc(B_b) − conf(B_b)|`` over equal-width bins (0, 1/M], ... in percent."""
    conf = np.asarray(confidence, dtype=np.float64)
    corr = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return float("nan")
    # bin b holds confidences in (b/M, (b+1)/M]; a confidence of exactly 0 goes to bin 0
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(corr[m].mean() - conf[m].mean())
    return float(100.0 * ece)


def reliability_bins(confidence, correct, bins: int = 15) -> dict:
    """Per-bin accuracy, mean confidence and count (None for empty bins), for the diagram."""
    conf = np.asarray(confidence, dtype=np.float64)
    corr = np.asarray(correct, dtype=np.float64)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    acc, mean_conf = [], []
    for b in range(bins):
        m = idx == b
        acc.append(float(corr[m].mean()) if m.any() else None)
        mean_conf.append(float(conf[m].mean()) if m.any() else None)
    return {"accuracy": acc, "confidence": mean_conf, "count": np.bincount(idx, minlength=bins).tolist()}


def _group_mean(acc: np.ndarray, classes: list[int]):
    vals = acc[classes] if classes else np.array([])
    vals = vals[~np.isnan(vals)]
    return float(vals.mean()) if len(vals) else None


def compute_metrics(logits: torch.Tensor, labels: torch.Tensor, class_counts, many: int = 100, few: int = 20,
                    ece_bins: int = 15) -> dict:
    """Every metric of a run from its test logits (after any post-hoc adjustment)."""
    logits = torch.as_tensor(logits).float()
    labels = torch.as_tensor(labels).long()
    num_classes = logits.shape[1]
    prob = logits.softmax(1)
    conf, pred = prob.max(1)
    correct = (pred == labels).numpy()
    cm = confusion_matrix(pred.numpy(), labels.numpy(), num_classes)
    acc = per_class_accuracy(cm)
    shots = shot_split(class_counts, many, few)
    halves = half_split(class_counts)
    nll = torch.nn.functional.cross_entropy(logits, labels).item() if len(labels) else float("nan")
    return {
        "overall": 100.0 * float(correct.mean()) if len(correct) else float("nan"),
        "balanced": float(np.nanmean(acc)),
        "many": _group_mean(acc, shots["many"]),
        "medium": _group_mean(acc, shots["medium"]),
        "few": _group_mean(acc, shots["few"]),
        "head": _group_mean(acc, halves["head"]),
        "tail": _group_mean(acc, halves["tail"]),
        "tail3": _group_mean(acc, halves["tail3"]),
        "ece": expected_calibration_error(conf.numpy(), correct, ece_bins),
        "nll": nll,
        "per_class": [None if np.isnan(a) else float(a) for a in acc],
        "class_counts": [int(c) for c in class_counts],
        # on an imbalanced test set plain accuracy rewards the largest class: lead with "balanced"
        "test_balanced": len({int(n) for n in np.bincount(labels.numpy(), minlength=num_classes) if n}) <= 1,
        "test_counts": [int(n) for n in np.bincount(labels.numpy(), minlength=num_classes)],
        "split_sizes": {k: len(v) for k, v in shots.items()},
        "reliability": reliability_bins(conf.numpy(), correct, ece_bins),
        "confusion_matrix": cm.tolist(),
    }


def headline(m: dict) -> tuple[str, float]:
    """The metric a run leads with: ``overall`` on a balanced test set, ``balanced`` (the mean of
    per-class accuracies) where the test set is imbalanced, since plain accuracy there rewards
    predicting the largest classes."""
    key = "overall" if m.get("test_balanced", True) else "balanced"
    return key, m[key]


def headline_line(m: dict) -> str:
    """``overall 81.20  head ...`` or ``balanced 74.10 (imbalanced test set)  overall 81.20  head ...``."""
    key, value = headline(m)
    lead = "" if key == "overall" else f"balanced {value:.2f} (imbalanced test set)  "
    return f"{lead}overall {m['overall']:.2f}  head {m['head']:.2f}  tail {m['tail']:.2f}  ece {m['ece']:.2f}"
