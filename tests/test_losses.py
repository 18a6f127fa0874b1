"""Each loss against values computed by hand on tiny batches."""

import math

import pytest
import torch
import torch.nn.functional as F

from longtail import losses
from longtail.models.heads import tau_normalize

Z = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
Y = torch.tensor([0, 2])
COUNTS = [100, 10, 1]


def _ce_by_hand(z, y):
    return sum(-z[i][y[i]] + math.log(sum(math.exp(v) for v in z[i])) for i in range(len(y))) / len(y)


def test_focal_gamma_zero_is_ce_and_gamma_two_by_hand():
    assert losses.focal_loss(Z, Y, 0.0).item() == pytest.approx(_ce_by_hand(Z.tolist(), Y.tolist()), rel=1e-6)
    p = F.softmax(Z, 1)
    by_hand = sum(-(1 - p[i, Y[i]]) ** 2 * math.log(p[i, Y[i]]) for i in range(2)) / 2
    assert losses.focal_loss(Z, Y, 2.0).item() == pytest.approx(float(by_hand), rel=1e-6)


def test_effective_number_weights_by_hand():
    beta = 0.9
    raw = [(1 - beta) / (1 - beta ** n) for n in COUNTS]
    expected = [w / sum(raw) * 3 for w in raw]
    assert losses.effective_number_weights(COUNTS, beta).tolist() == pytest.approx(expected, rel=1e-6)
    assert losses.effective_number_weights(COUNTS, 0.0).tolist() == [1.0, 1.0, 1.0]


def test_ldam_margins_and_loss_by_hand():
    m = losses.ldam_margins(COUNTS, 0.5)
    raw = [n ** -0.25 for n in COUNTS]
    assert m.tolist() == pytest.approx([0.5 * r / max(raw) for r in raw], rel=1e-6)
    assert m.max().item() == pytest.approx(0.5)
    cos = torch.tensor([[0.9, 0.1, -0.2], [0.0, 0.3, 0.4]])
    shifted = cos.clone()
    shifted[0, 0] -= m[0]
    shifted[1, 2] -= m[2]
    expected = _ce_by_hand((30 * shifted).tolist(), Y.tolist())
    assert losses.ldam_loss(cos, Y, m, 30.0).item() == pytest.approx(expected, rel=1e-5)


def test_balanced_softmax_is_ce_on_prior_shifted_logits():
    log_pi = [math.log(n / 111) for n in COUNTS]
    shifted = [[z + lp for z, lp in zip(row, log_pi)] for row in Z.tolist()]
    assert losses.balanced_softmax_loss(Z, Y, COUNTS).item() == pytest.approx(_ce_by_hand(shifted, Y.tolist()), rel=1e-6)
    assert losses.logit_adjusted_loss(Z, Y, COUNTS, 1.0).item() == pytest.approx(losses.balanced_softmax_loss(Z, Y, COUNTS).item())


def test_posthoc_adjustment_favours_rare_classes():
    out = losses.posthoc_adjust(torch.zeros(1, 3), COUNTS, 1.0)
    assert out.argmax().item() == 2
    assert out[0].tolist() == pytest.approx([-math.log(n / 111) for n in COUNTS], rel=1e-6)


def test_tau_norm_zero_is_identity_and_one_gives_unit_norms():
    w = torch.randn(5, 8)
    x = torch.randn(20, 8)
    assert torch.equal((x @ tau_normalize(w, 0.0).t()).argmax(1), (x @ w.t()).argmax(1))
    assert torch.allclose(tau_normalize(w, 1.0).norm(dim=1), torch.ones(5))
