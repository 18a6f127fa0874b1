import numpy as np
import pytest
import torch

from longtail.evaluation.metrics import compute_metrics, confusion_matrix, expected_calibration_error


def test_ece_hand_computed():
    # bins of width 1/15: 0.95 and 0.97 share the last bin, 0.3 sits alone, 0.5 alone
    conf = [0.95, 0.97, 0.30, 0.50]
    correct = [1, 0, 1, 0]
    # last bin: acc 0.5, conf 0.96 -> |.46| * 2/4 ; 0.30: |1-.3| * 1/4 ; 0.50: |0-.5| * 1/4
    expected = 100 * (0.46 * 0.5 + 0.70 * 0.25 + 0.50 * 0.25)
    assert expected_calibration_error(conf, correct, 15) == pytest.approx(expected)


def test_ece_bin_edges_are_right_closed():
    # 1/15 exactly belongs to bin 0 together with 0.01; with right-closed bins both average
    conf = [1 / 15, 0.01]
    assert expected_calibration_error(conf, [1, 1], 15) == pytest.approx(100 * (1 - (1 / 15 + 0.01) / 2))


def test_confusion_and_group_accuracies_by_hand():
    # 4 classes; training counts put class 0 many, 1 medium, 2-3 few
    counts = [150, 50, 10, 5]
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    pred = torch.tensor([0, 0, 1, 0, 2, 3, 0, 0])
    logits = torch.nn.functional.one_hot(pred, 4).float() * 10
    m = compute_metrics(logits, y, counts)
    assert confusion_matrix(pred.numpy(), y.numpy(), 4).tolist() == [[2, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [2, 0, 0, 0]]
    assert m["per_class"] == [100.0, 50.0, 50.0, 0.0]
    assert m["overall"] == pytest.approx(50.0)
    assert (m["many"], m["medium"], m["few"]) == (100.0, 50.0, 25.0)
    assert (m["head"], m["tail"]) == (75.0, 25.0)
    assert m["tail3"] == pytest.approx(100 / 3 * (50 + 50 + 0) / 100)
    assert m["split_sizes"] == {"many": 1, "medium": 1, "few": 2}


def test_empty_group_is_none():
    counts = [500, 400, 300]
    logits = torch.eye(3)
    m = compute_metrics(logits, torch.arange(3), counts)
    assert m["few"] is None and m["medium"] is None and m["many"] == 100.0
    assert np.isclose(m["balanced"], 100.0)
