"""Every exact k-DPP sampler against the exact law P(Y) = det(L_Y) / e_k(λ) on an enumerable
ground set (n = 8, k = 3), by a chi-square goodness-of-fit test at a fixed seed."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from longtail import dpp
from longtail.dpp import kdpp as K

N, KK, DRAWS = 8, 3, 12000


def _chi2_pvalue(sampler, L, draws=DRAWS, seed=0):
    probs = dpp.kdpp_probabilities(L, KK)
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(probs, 0)
    for _ in range(draws):
        counts[tuple(int(i) for i in sampler(rng))] += 1
    keys = list(probs)
    obs = np.array([counts[s] for s in keys])
    exp = np.array([probs[s] * draws for s in keys])
    assert obs.sum() == draws  # every draw is a valid sorted k-subset
    return stats.chisquare(obs, exp).pvalue


def _ipdpp(scale, seed=1):
    p = np.random.default_rng(seed).uniform(0.05, 1.0, N)
    return dpp.ipdpp_kernel(p, scale)


def _generic_diag_rank1(seed=2):
    r = np.random.default_rng(seed)
    return r.uniform(0.2, 1.0, N), r.normal(0, 0.8, N)


@pytest.mark.parametrize("case", ["ipdpp_n2", "ipdpp_n", "generic"])
@pytest.mark.parametrize("path", ["rejection", "esp"])
def test_structured_sampler_matches_exact_law(case, path):
    d, u = {"ipdpp_n2": lambda: _ipdpp("n2"), "ipdpp_n": lambda: _ipdpp("n"), "generic": _generic_diag_rank1}[case]()
    bound = 64.0 if path == "rejection" else 0.0  # bound 0 forces the O(N k) fallback
    p = _chi2_pvalue(lambda rng: dpp.sample_kdpp_diag_rank1(d, u, KK, rng, max_bound=bound), dpp.diag_rank1_dense(d, u))
    assert p > 1e-3, p


def test_spectral_sampler_matches_exact_law():
    a = np.random.default_rng(3).normal(size=(N, N))
    L = a @ a.T / N
    assert _chi2_pvalue(lambda rng: dpp.sample_kdpp_spectral(L, KK, rng), L) > 1e-3


def test_dual_sampler_matches_exact_law():
    b = np.random.default_rng(4).normal(size=(N, 4))
    assert _chi2_pvalue(lambda rng: dpp.sample_kdpp_dual(b, KK, rng), b @ b.T) > 1e-3


def test_quality_diversity_kernel_through_dual():
    r = np.random.default_rng(5)
    b = dpp.quality_diversity_factor(r.normal(size=(N, 5)), r.uniform(0.5, 2.0, N))
    assert _chi2_pvalue(lambda rng: dpp.sample_kdpp_dual(b, KK, rng), b @ b.T) > 1e-3


def test_a_wrong_law_is_rejected():
    """The test has power: uniform draws fail against the 'generic' kernel's law."""
    d, u = _generic_diag_rank1()
    p = _chi2_pvalue(lambda rng: np.sort(rng.choice(N, KK, replace=False)), dpp.diag_rank1_dense(d, u))
    assert p < 1e-6


def test_k_product_law_exact():
    w = np.array([0.1, 0.5, 1.0, 2.0, 4.0, 0.0, 3.0])
    probs = {s: math.prod(w[list(s)]) for s in itertools.combinations(range(7), 2)}
    z = sum(probs.values())
    rng = np.random.default_rng(0)
    counts = dict.fromkeys(probs, 0)
    for _ in range(20000):
        counts[tuple(int(i) for i in np.sort(dpp.sample_k_product(w, 2, rng)))] += 1
    keys = [s for s in probs if probs[s] > 0]
    assert all(counts[s] == 0 for s in probs if probs[s] == 0)  # zero-weight item never drawn
    assert stats.chisquare([counts[s] for s in keys], [probs[s] / z * 20000 for s in keys]).pvalue > 1e-3


def test_log_elementary_symmetric_matches_direct_and_survives_overflow():
    w = np.array([0.5, 2.0, 3.0, 0.25])
    e = np.exp(dpp.log_elementary_symmetric(np.log(w), 4))
    direct = [sum(math.prod(c) for c in itertools.combinations(w, r)) for r in range(5)]
    assert np.allclose(e, direct)
    big = dpp.log_elementary_symmetric(np.zeros(5000), 500)  # e_500 of 5000 ones = C(5000, 500)
    assert big[500] == pytest.approx(math.lgamma(5001) - math.lgamma(501) - math.lgamma(4501), rel=1e-9)


def test_lower_true_class_probability_raises_inclusion():
    p = np.linspace(0.05, 0.95, N)  # item 0 is the hardest (most information)
    for scale in ("n2", "n"):
        d, u = dpp.ipdpp_kernel(p, scale)
        probs = dpp.kdpp_probabilities(dpp.diag_rank1_dense(d, u), KK)
        incl = np.array([sum(v for s, v in probs.items() if i in s) for i in range(N)])
        assert np.all(np.diff(incl) < 0), (scale, incl)
    d, u = dpp.ipdpp_kernel(p, "n")
    rng = np.random.default_rng(0)
    hits = np.zeros(N)
    for _ in range(20000):
        hits[dpp.sample_kdpp_diag_rank1(d, u, KK, rng)] += 1
    assert hits[0] > hits[-1] * 1.15  # exact: 0.444 vs 0.325 inclusion (scale n)


def test_ipdpp_kernel_rows_sum_to_one_and_psd():
    for scale in ("n2", "n"):
        S = dpp.diag_rank1_dense(*dpp.ipdpp_kernel(np.random.default_rng(0).uniform(0.01, 1, 50), scale))
        assert np.allclose(S.sum(1), 1.0)
        lam = np.linalg.eigvalsh(S)
        assert lam.min() > -1e-12 and lam.max() < 1 + 1e-9  # eigenvalues in [0, 1] (Lemmas 4.4-4.5)


def test_large_draw_sizes_and_edge_cases():
    rng = np.random.default_rng(0)
    d, u = dpp.ipdpp_kernel(rng.uniform(0.01, 1.0, 6000), "n2")
    y = dpp.sample_kdpp_diag_rank1(d, u, 600, rng)
    assert len(np.unique(y)) == 600 and y.max() < 6000
    assert len(dpp.sample_kdpp_diag_rank1(d, u, 6000, rng)) == 6000
    assert len(dpp.sample_kdpp_diag_rank1(d, u, 0, rng)) == 0
    y = K._sample_diag_rank1_esp(d[:300], u[:300], 40, rng)
    assert len(np.unique(y)) == 40


def test_degenerate_kernels_give_a_correct_draw_or_a_clear_error():
    rng = np.random.default_rng(0)
    # every p = 1 (float32) under scale n: d = 1 - u_i U is exactly zero, the kernel is u uᵀ (rank 1)
    d, u = dpp.ipdpp_kernel(np.ones(50, np.float32), "n")
    assert np.all(d == 0)
    assert len(dpp.sample_kdpp_diag_rank1(d, u, 1, rng)) == 1
    for k in (2, 10):
        with pytest.raises(ValueError, match="rank 1"):
            dpp.sample_kdpp_diag_rank1(d, u, k, rng)
    # one zero on the diagonal with u_j != 0: k = (positive entries) + 1 is still possible, by its exact law
    d, u = _generic_diag_rank1()
    d = d.copy()
    d[[0, 1, 2, 3, 4]] = 0.0  # 3 positive entries: rank 4
    L = dpp.diag_rank1_dense(d, u)
    probs = {s: v for s, v in dpp.kdpp_probabilities(L, 4).items() if v > 0}
    draws = [tuple(int(i) for i in dpp.sample_kdpp_diag_rank1(d, u, 4, rng)) for _ in range(3000)]
    assert set(draws) <= set(probs)
    obs = np.array([draws.count(s) for s in probs])
    assert stats.chisquare(obs, np.array(list(probs.values())) * len(draws)).pvalue > 1e-3
    with pytest.raises(ValueError, match="rank 4"):
        dpp.sample_kdpp_diag_rank1(d, u, 5, rng)
    # spectral and dual: a rank-2 Gram kernel whose eigensolver returns round-off for the rest
    b = np.random.default_rng(5).normal(size=(N, 2))
    assert np.linalg.eigvalsh(b @ b.T)[:-2].max() != 0  # round-off, not zeros
    for draw in (lambda k: dpp.sample_kdpp_spectral(b @ b.T, k, rng), lambda k: dpp.sample_kdpp_dual(b, k, rng)):
        assert len(np.unique(draw(2))) == 2
        with pytest.raises(ValueError, match="numerical rank is 2"):
            draw(3)
    # negative k, everywhere
    for draw in (lambda: dpp.sample_kdpp_diag_rank1(d, u, -1, rng), lambda: dpp.sample_kdpp_spectral(b @ b.T, -1, rng),
                 lambda: dpp.sample_kdpp_dual(b, -1, rng), lambda: dpp.sample_k_product(np.ones(4), -1, rng)):
        with pytest.raises(ValueError, match="k = -1"):
            draw()


def test_ipdpp_subset_on_a_degenerate_class_names_the_fix():
    from longtail.errors import LongtailError
    from longtail.methods.ipdpp import draw_subset

    labels = np.array([0] * 30 + [1] * 5)
    with pytest.raises(LongtailError, match="scale: n2"):
        draw_subset(labels, 5, np.random.default_rng(0), "ipdpp", np.ones(35), scale="n")
    sub = draw_subset(labels, 5, np.random.default_rng(0), "ipdpp", np.ones(35), scale="n2")
    assert len(sub) == 10 and (labels[sub] == 0).sum() == 5
