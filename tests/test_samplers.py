import numpy as np
import pytest
import torch

from longtail.data.samplers import class_probabilities, draw_epoch

COUNTS = [400, 200, 100, 50, 25, 10]


def _labels():
    return torch.cat([torch.full((n,), c) for c, n in enumerate(COUNTS)])[torch.randperm(sum(COUNTS), generator=torch.Generator().manual_seed(1))]


def test_class_probabilities_exact():
    n = np.array(COUNTS, float)
    np.testing.assert_allclose(class_probabilities("instance", COUNTS), n / n.sum())
    np.testing.assert_allclose(class_probabilities("class_balanced", COUNTS), np.full(6, 1 / 6))
    np.testing.assert_allclose(class_probabilities("sqrt", COUNTS), np.sqrt(n) / np.sqrt(n).sum())
    np.testing.assert_allclose(class_probabilities("reversed", COUNTS), (1 / n) / (1 / n).sum())
    np.testing.assert_allclose(class_probabilities("progressive", COUNTS, 0, 10), n / n.sum())
    np.testing.assert_allclose(class_probabilities("progressive", COUNTS, 5, 10), 0.5 * n / n.sum() + 0.5 / 6)
    np.testing.assert_allclose(class_probabilities("progressive", COUNTS, 10, 10), np.full(6, 1 / 6))


def test_instance_sampler_is_a_permutation():
    labels = _labels()
    idx = draw_epoch(labels, "instance", torch.Generator().manual_seed(0), 6)
    assert sorted(idx.tolist()) == list(range(len(labels)))


@pytest.mark.parametrize("kind", ["class_balanced", "sqrt", "reversed", "progressive"])
def test_observed_class_frequencies_match_target(kind):
    """200k draws: every class frequency within 5 standard errors of its target, and
    images uniform within a class (chi-square-free check on the smallest class)."""
    labels = _labels()
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([draw_epoch(labels, kind, g, 6, epoch=3, epochs=10) for _ in range(250)])
    target = class_probabilities(kind, COUNTS, 3, 10).numpy()
    freq = np.bincount(labels[draws].numpy(), minlength=6) / len(draws)
    se = np.sqrt(target * (1 - target) / len(draws))
    assert np.all(np.abs(freq - target) < 5 * se), (freq, target)
    small = torch.nonzero(labels == 5).flatten()
    hits = np.array([(draws == i).sum().item() for i in small])
    expected = len(draws) * target[5] / len(small)
    assert np.all(np.abs(hits - expected) < 5 * np.sqrt(expected))


def test_draw_is_a_pure_function_of_the_generator_and_respects_pool():
    labels = _labels()
    a = draw_epoch(labels, "class_balanced", torch.Generator().manual_seed(7), 6)
    b = draw_epoch(labels, "class_balanced", torch.Generator().manual_seed(7), 6)
    assert torch.equal(a, b)
    pool = torch.arange(0, len(labels), 3)
    d = draw_epoch(labels, "sqrt", torch.Generator().manual_seed(0), 6, pool=pool)
    assert len(d) == len(pool) and set(d.tolist()) <= set(pool.tolist())
    d = draw_epoch(labels, "instance", torch.Generator().manual_seed(0), 6, pool=pool)
    assert sorted(d.tolist()) == pool.tolist()


def test_class_aware_sampler_follows_its_law():
    """MiSLAS's / Kang et al.'s class-aware sampler: max n_c x C images an epoch, runs of 4 of one
    class, the classes in shuffled cycles (every class once per cycle), each class's images in
    shuffled cycles (no image twice before all of its class were drawn)."""
    counts = [40, 13, 6, 3, 2]
    labels = torch.tensor([c for c, n in enumerate(counts) for _ in range(n)])[torch.randperm(sum(counts), generator=torch.Generator().manual_seed(1))]
    g = torch.Generator().manual_seed(0)
    order = draw_epoch(labels, "class_aware", g, len(counts))
    assert len(order) == 40 * 5
    cls = labels[order].view(-1, 4)
    assert (cls == cls[:, :1]).all()  # runs of 4
    visits = cls[:, 0]
    for k in range(len(visits) // 5):
        assert sorted(visits[5 * k:5 * k + 5].tolist()) == [0, 1, 2, 3, 4]  # each cycle a permutation of the classes
    for c, n in enumerate(counts):
        drawn = order[labels[order] == c]
        assert len(drawn) == 40  # every class the same share
        for k in range(len(drawn) // n):  # each of its cycles is a permutation of the class's images
            assert sorted(drawn[k * n:(k + 1) * n].tolist()) == sorted(torch.nonzero(labels == c).flatten().tolist())
    again = draw_epoch(labels, "class_aware", torch.Generator().manual_seed(0), len(counts))
    assert torch.equal(order, again)  # a pure function of the generator
    pool = torch.nonzero(labels != 0).flatten()
    sub = draw_epoch(labels, "class_aware", torch.Generator().manual_seed(2), len(counts), pool=pool)
    assert len(sub) == 13 * 4 and set(sub.tolist()) <= set(pool.tolist())
