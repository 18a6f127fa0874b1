"""Both BNS forms against values computed by hand on a 4-sample batch."""

import math

import pytest
import torch

from longtail.losses.bns import balanced_negative_weights, bns_code_loss, bns_paper_loss


def _unit(deg):
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def _sig(x):
    return 1 / (1 + math.exp(-x))


# a batch of B = 4 images, labels [0, 0, 1, 2]; two views each (2D unit vectors, so every
# cosine is the cosine of an angle difference)
LABELS = [0, 0, 1, 2]
VIEW1 = [0, 20, 100, 200]
VIEW2 = [10, 35, 120, 180]
TAU = 0.5


def test_code_form_by_hand():
    angles = VIEW1 + VIEW2
    labels = LABELS + LABELS
    n = 8
    total = 0.0
    for i in range(n):
        s = [math.exp(math.cos(math.radians(angles[i] - angles[j])) / TAU) for j in range(n)]
        pos_js = [j for j in range(n) if j != i and labels[j] == labels[i]]
        pos = sum(s[j] for j in pos_js) / len(pos_js)
        neg = sum(s[j] for j in range(n) if labels[j] != labels[i]) / n
        total += math.log(_sig(pos)) + math.log(_sig(-neg))
    expected = -total / n
    z = torch.tensor([_unit(a) for a in angles]) * 3.0  # scale must not matter (normalised)
    got = bns_code_loss(z, torch.tensor(labels), TAU).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_code_form_single_value_fully_by_hand():
    # two images of one class, identical views: every S_ij = e^{1/τ} = e^2, no negatives
    z = torch.tensor([[1.0, 0.0]] * 4)
    got = bns_code_loss(z, torch.tensor([0, 0, 0, 0]), 0.5).item()
    assert got == pytest.approx(-(math.log(_sig(math.exp(2))) + math.log(0.5)), rel=1e-6)


def test_paper_form_by_hand():
    b = 4
    total = 0.0
    for i in range(b):
        queries = [a for a in range(b) if LABELS[a] == LABELS[i]]
        others = sorted({LABELS[j] for j in range(b)} - {LABELS[i]})
        li = 0.0
        for a in queries:
            qa = VIEW1[a]
            li += math.log(_sig(math.cos(math.radians(qa - VIEW2[i])) / TAU))
            for c in others:
                members = [j for j in range(b) if LABELS[j] == c]
                li += sum(math.log(_sig(-math.cos(math.radians(qa - VIEW2[j])) / TAU)) for j in members) / len(members)
        total += li / len(queries)
    expected = -total / b
    q = torch.tensor([_unit(a) for a in VIEW1])
    v = torch.tensor([_unit(a) for a in VIEW2])
    got = bns_paper_loss(q, v, torch.tensor(LABELS), TAU).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_paper_form_negatives_are_class_balanced():
    labels = torch.tensor([0] * 6 + [1] * 3 + [2])  # a head class with 6 members, a tail with 1
    w = balanced_negative_weights(labels, 2.0)
    for i in range(len(labels)):
        per_class = {c: w[i, labels == c].sum().item() for c in range(3) if c != labels[i]}
        assert all(v == pytest.approx(2.0) for v in per_class.values()), per_class
        assert w[i, labels == labels[i]].sum() == 0


def test_projection_head_width():
    """proj_hidden: the BNS authors' 2,048-unit hidden layer; 0 keeps SimCLR's feature width."""
    from longtail.methods.bns import projection_head

    assert [m.weight.shape for m in projection_head(64, 128, 2048) if hasattr(m, "weight")] == [(2048, 64), (128, 2048)]
    assert [m.weight.shape for m in projection_head(64, 128) if hasattr(m, "weight")] == [(64, 64), (128, 64)]
