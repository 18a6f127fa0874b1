"""Exact k-DPP samplers, each a small pure function of its inputs and a seeded
``numpy.random.Generator``.

A k-DPP with PSD kernel L on N items draws a k-subset Y with
``P(Y) = det(L_Y) / e_k(λ_1, …, λ_N)`` (Kulesza & Taskar 2012, Eq. 5.1), where e_k is the
k-th elementary symmetric polynomial of L's eigenvalues.

Three exact samplers:

* :func:`sample_kdpp_spectral` — any PSD kernel: eigendecompose, choose k eigenvectors with
  probabilities from elementary symmetric polynomials, then sample the projection DPP they
  span (Kulesza & Taskar 2012, Alg. 8 and Alg. 1). O(N³).
* :func:`sample_kdpp_dual` — Gram kernels ``L = B Bᵀ`` (B: N × d, N ≫ d): the same through
  the d × d dual kernel ``C = Bᵀ B`` (Kulesza & Taskar 2012, §3.3). O(N d² + d³ + N k²).
* :func:`sample_kdpp_diag_rank1` — the IP-DPP kernel ``S = diag(d) + u uᵀ`` (Lin & Yuan 2025,
  §4.2; see :func:`ipdpp_kernel`). By the matrix determinant lemma
  ``det(S_Y) = Π_{i∈Y} d_i + Σ_{j∈Y} u_j² Π_{i∈Y∖j} d_i``, so the k-DPP is a mixture of
  product-form laws over k-subsets; no N × N matrix is ever formed. Expected cost O(N √k)
  by conditional-Poisson rejection, with an O(N k) elementary-symmetric-polynomial sampler as
  the exact fallback.

Elementary symmetric polynomials are computed in log space (:func:`log_elementary_symmetric`):
for N in the thousands e_k overflows float64 (DPPy 0.3.3's exact k-DPP does, with a
RuntimeWarning and invalid comparisons).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

_NEG_INF = -np.inf


# ----------------------------------------------------------------------- polynomials
def log_elementary_symmetric(log_w: np.ndarray, k: int) -> np.ndarray:
    """``log e_r(w_1..w_N)`` for r = 0..k, by the recursion
    ``e_r(w_1..w_n) = e_r(w_1..w_{n-1}) + w_n e_{r-1}(w_1..w_{n-1})`` in log space."""
    e = np.full(k + 1, _NEG_INF)
    e[0] = 0.0
    for lw in np.asarray(log_w, dtype=np.float64):
        e[1:] = np.logaddexp(e[1:], lw + e[:-1])
    return e


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(x, dtype=np.float64))


# ----------------------------------------------------------- product-form k-subsets
def sample_k_product(w: np.ndarray, k: int, rng: np.random.Generator, max_tries: int = 2000) -> np.ndarray:
    """Exact draw of a k-subset with ``P(Y) ∝ Π_{i∈Y} w_i`` (w ≥ 0).

    Conditional Poisson sampling: independent Bernoulli(π_i) with
    ``π_i = λ w_i / (1 + λ w_i)`` give ``P(Y) ∝ Π_{i∈Y} λ w_i`` for every outcome, so keeping
    the first outcome of size k is exact for any λ > 0; λ is set so that ``Σ π_i = k``,
    where ``P(|Y| = k) ≈ (2π Σ π_i (1 − π_i))^{-1/2}``. After ``max_tries`` misses it falls
    back to :func:`_sample_k_product_esp` (exact, O(N k)).
    """
    return _product_sampler(w, k, max_tries)(rng)


def _product_sampler(w: np.ndarray, k: int, max_tries: int = 2000):
    """Prepare :func:`sample_k_product` for repeated draws (λ solved once)."""
    w = np.asarray(w, dtype=np.float64)
    support = np.flatnonzero(w > 0)
    _check_k(k, len(w))
    if k > len(support):
        raise ValueError(f"cannot draw {k} items: only {len(support)} have positive weight")
    if k == 0 or k == len(support):
        return lambda rng: support[:k] if k else np.zeros(0, dtype=np.int64)
    ws = w[support]
    pi = _poisson_inclusion(np.log(ws), k)

    def draw(rng):
        for _ in range(max_tries):
            keep = rng.random(len(ws)) < pi
            if keep.sum() == k:
                return support[keep]
        return support[_sample_k_product_esp(ws, k, rng)]

    return draw


def _poisson_inclusion(logw: np.ndarray, k: int) -> np.ndarray:
    """``π_i = σ(x + log w_i)`` with x solving ``Σ π_i = k`` (Newton, safeguarded by bisection)."""
    def f(x):
        pi = 0.5 * (1 + np.tanh((x + logw) / 2))  # σ without overflow
        return pi.sum() - k, pi

    n = len(logw)
    lo, hi = -60.0 - logw.max(), 60.0 - logw.min()
    x = math.log(k / (n - k)) - float(np.mean(logw))
    for _ in range(100):
        g, pi = f(x)
        if abs(g) < 1e-9 * max(k, 1):
            break
        if g < 0:
            lo = x
        else:
            hi = x
        step = g / max(float(np.sum(pi * (1 - pi))), 1e-300)
        x = x - step if lo < x - step < hi else 0.5 * (lo + hi)
    return f(x)[1]


def _sample_k_product_esp(w: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Exact sequential draw with suffix elementary symmetric polynomials:
    item i is taken with probability ``w_i e_{r−1}(w_{i+1..N}) / e_r(w_{i..N})`` (r: items
    still to take). O(N k) time and memory."""
    n = len(w)
    logw = _log(w)
    table = np.full((n + 1, k + 1), _NEG_INF)  # table[i] = log e_·(w_i..w_N)
    table[n, 0] = 0.0
    for i in range(n - 1, -1, -1):
        table[i] = table[i + 1]
        table[i, 1:] = np.logaddexp(table[i + 1, 1:], logw[i] + table[i + 1, :-1])
    out, r = [], k
    for i in range(n):
        if r == 0:
            break
        p = math.exp(logw[i] + table[i + 1, r - 1] - table[i, r]) if logw[i] > _NEG_INF else 0.0
        if rng.random() < p:
            out.append(i)
            r -= 1
    return np.asarray(out, dtype=np.int64)


# ------------------------------------------------------------- diagonal + rank one
def ipdpp_kernel(p: np.ndarray, scale: str = "n2") -> tuple[np.ndarray, np.ndarray]:
    """The IP-DPP kernel of one class as ``(d, u)`` with ``S = diag(d) + u uᵀ``.

    Lin & Yuan's code builds ``S_ij = p_i p_j / N²`` off the diagonal and sets each diagonal
    entry so its row sums to 1 (a symmetric stochastic matrix, their Lemmas 4.4-4.5). With
    ``u = p / N`` and ``U = Σ u``: ``S_ii = 1 − u_i U + u_i²``, hence ``d_i = 1 − u_i U``.
    ``scale="n"`` uses ``p_i p_j / N`` (``u = p / √N``), a reading of the paper's text.
    Lower p (more information −log p) means larger d_i, so the item is more likely drawn.
    """
    p = np.asarray(p, dtype=np.float64)
    n = len(p)
    if scale == "n2":
        u = p / n
    elif scale == "n":
        u = p / math.sqrt(n)
    else:
        raise ValueError(f"unknown IP-DPP kernel scale '{scale}' (n2 or n)")
    d = 1.0 - u * u.sum()
    # 1 − u_i U is exactly 0 when every p is 1 under scale n; round-off leaves ±1e-16 there,
    # which would pass for a positive diagonal and hide that the kernel is rank one
    d[d < 1e-12] = 0.0
    return d, u


def diag_rank1_dense(d: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The N × N matrix ``diag(d) + u uᵀ`` (for tests and reference samplers)."""
    return np.diag(d) + np.outer(u, u)


def sample_kdpp_diag_rank1(d: np.ndarray, u: np.ndarray, k: int, rng: np.random.Generator,
                           max_bound: float = 64.0) -> np.ndarray:
    """Exact k-DPP draw for ``L = diag(d) + u uᵀ`` (d ≥ 0), sorted indices.

    ``P(Y) ∝ Π_{i∈Y} d_i · (1 + Σ_{j∈Y} a_j)`` with ``a_j = u_j² / d_j``. When every d_i > 0
    and ``M = 1 + (sum of the k largest a_j)`` is at most ``max_bound``, draw Y from the
    product law of d (:func:`sample_k_product`) and accept it with probability
    ``(1 + Σ_{j∈Y} a_j) / M`` (exact rejection sampling; acceptance ≥ 1/M). Otherwise (a
    zero d_i, or a large M) use :func:`_sample_diag_rank1_esp`, exact in O(N k).
    """
    d = np.asarray(d, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    n = len(d)
    _check_k(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    # det(L_Y) > 0 needs every member but at most one to have d_i > 0, and that one u_j != 0
    rank = int(np.sum(d > 0)) + int(np.any((d <= 0) & (u != 0)))
    if k > rank:
        raise ValueError(f"cannot draw a {k}-subset: diag(d) + u uᵀ has rank {rank} ({int(np.sum(d > 0))} of {n} "
                         f"diagonal entries are positive), so every {k}-subset has probability 0")
    if np.all(d > 0):
        a = u * u / d
        bound = 1.0 + np.sort(a)[-k:].sum()
        if bound <= max_bound:
            propose = _product_sampler(d, k)
            while True:
                y = propose(rng)
                if rng.random() * bound < 1.0 + a[y].sum():
                    return np.sort(y)
    return _sample_diag_rank1_esp(d, u, k, rng)


def _sample_diag_rank1_esp(d: np.ndarray, u: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Exact sequential draw for ``det(L_Y) = Σ_{m} ...``: each subset counted once unmarked
    (weight Π d_i) and once with one marked member j (weight u_j² Π_{i≠j} d_i). Suffix tables
    ``T[i, r, m]`` (log of the total weight of r-subsets of items i..N with m ∈ {0, 1} marks)
    drive the item-by-item choice; summing over the mark gives det(L_Y). O(N k)."""
    n = len(d)
    ld, lu2 = _log(d), _log(u * u)
    t = np.full((n + 1, k + 1, 2), _NEG_INF)
    t[n, 0, 0] = 0.0
    for i in range(n - 1, -1, -1):
        nxt = t[i + 1]
        t[i] = nxt
        t[i, 1:, 0] = np.logaddexp(nxt[1:, 0], ld[i] + nxt[:-1, 0])
        t[i, 1:, 1] = np.logaddexp(np.logaddexp(nxt[1:, 1], ld[i] + nxt[:-1, 1]), lu2[i] + nxt[:-1, 0])
    total = np.logaddexp(t[0, k, 0], t[0, k, 1])
    m = int(rng.random() < math.exp(t[0, k, 1] - total))
    out, r = [], k
    for i in range(n):
        if r == 0:
            break
        nxt, here = t[i + 1], t[i, r, m]
        x = rng.random()
        p_plain = math.exp(ld[i] + nxt[r - 1, m] - here) if ld[i] > _NEG_INF else 0.0
        if x < p_plain:
            out.append(i)
            r -= 1
            continue
        if m == 1:
            p_mark = math.exp(lu2[i] + nxt[r - 1, 0] - here) if lu2[i] > _NEG_INF else 0.0
            if x < p_plain + p_mark:
                out.append(i)
                r -= 1
                m = 0
    return np.asarray(out, dtype=np.int64)


def _check_k(k: int, n: int) -> None:
    if not 0 <= k <= n:
        raise ValueError(f"k = {k} not in [0, {n}]: a k-DPP draws between 0 and N items")


# ------------------------------------------------------------------- spectral k-DPP
RANK_TOL = 1e-10  # eigenvalues below RANK_TOL × the largest are round-off of zero


def _select_eigenvectors(eigvals: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Kulesza & Taskar Alg. 8, phase 1: walk eigenvalues from the last to the first and keep
    eigenvalue n with probability ``λ_n e_{r−1}(λ_1..λ_{n−1}) / e_r(λ_1..λ_n)``.

    Eigenvalues below ``RANK_TOL`` × the largest count as zero: an eigensolver returns round-off
    (1e-17, say) for a rank-deficient kernel, and choosing such an eigenvector would make the
    projection DPP draw from a direction the kernel does not have (a wrong-size or wrong-law
    subset). A k above the numerical rank is an error."""
    lam = np.clip(np.asarray(eigvals, dtype=np.float64), 0.0, None)
    n = len(lam)
    if len(lam):
        lam[lam < RANK_TOL * lam.max()] = 0.0
    rank = int(np.sum(lam > 0))
    if k > rank:
        raise ValueError(f"cannot draw a {k}-subset: the kernel's numerical rank is {rank} (eigenvalues above "
                         f"{RANK_TOL:g} × the largest), so every {k}-subset has probability 0")
    loglam = _log(lam)
    table = np.full((n + 1, k + 1), _NEG_INF)  # table[m] = log e_·(λ_1..λ_m)
    table[0, 0] = 0.0
    for m in range(1, n + 1):
        table[m] = table[m - 1]
        table[m, 1:] = np.logaddexp(table[m - 1, 1:], loglam[m - 1] + table[m - 1, :-1])
    chosen, r = [], k
    for m in range(n, 0, -1):
        if r == 0:
            break
        p = math.exp(loglam[m - 1] + table[m - 1, r - 1] - table[m, r]) if loglam[m - 1] > _NEG_INF else 0.0
        if rng.random() < p:
            chosen.append(m - 1)
            r -= 1
    return np.asarray(chosen, dtype=np.int64)


def sample_projection_dpp(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw from the projection DPP with kernel ``V Vᵀ`` (V: N × k, orthonormal columns):
    the chain rule with Gram-Schmidt updates of the marginals (Kulesza & Taskar Alg. 1;
    Gillenwater 2014, Alg. 2). O(N k²)."""
    n, k = v.shape
    norms = np.einsum("ij,ij->i", v, v)
    coef = np.zeros((k, n))
    out = []
    for it in range(k):
        p = np.clip(norms, 0.0, None)
        i = int(rng.choice(n, p=p / p.sum()))
        out.append(i)
        col = v @ v[i] - coef[:it].T @ coef[:it, i]
        coef[it] = col / math.sqrt(max(norms[i], 1e-300))
        norms = norms - coef[it] ** 2
        norms[out] = 0.0
    return np.sort(np.asarray(out, dtype=np.int64))


def sample_kdpp_spectral(L: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Exact k-DPP draw for any symmetric PSD kernel L (N × N), sorted indices."""
    _check_k(k, len(L))
    lam, vec = np.linalg.eigh(np.asarray(L, dtype=np.float64))
    idx = _select_eigenvectors(lam, k, rng)
    return sample_projection_dpp(vec[:, idx], rng)


def sample_kdpp_dual(b: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Exact k-DPP draw for the Gram kernel ``L = B Bᵀ`` (B: N × d) through the dual kernel
    ``C = Bᵀ B`` (d × d): L's nonzero eigenpairs are ``(λ, B v / √λ)`` for C's ``(λ, v)``."""
    b = np.asarray(b, dtype=np.float64)
    _check_k(k, len(b))
    lam, vec = np.linalg.eigh(b.T @ b)
    idx = _select_eigenvectors(lam, k, rng)
    # orthonormal in exact arithmetic; the chain rule below re-normalises its marginals, so
    # round-off needs no QR pass
    return sample_projection_dpp(b @ vec[:, idx] / np.sqrt(lam[idx]), rng)


# -------------------------------------------------------------------------- reference
def kdpp_probabilities(L: np.ndarray, k: int) -> dict[tuple[int, ...], float]:
    """Exact ``P(Y) = det(L_Y) / e_k(λ)`` of every k-subset (small N only: enumeration)."""
    L = np.asarray(L, dtype=np.float64)
    dets = {s: max(np.linalg.det(L[np.ix_(s, s)]), 0.0) for s in itertools.combinations(range(len(L)), k)}
    z = sum(dets.values())
    return {s: v / z for s, v in dets.items()}


def quality_diversity_factor(features: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """B with ``L = B Bᵀ = diag(q) K diag(q)``, K the cosine Gram matrix of ``features``
    (Kulesza & Taskar §3.1 quality-diversity decomposition): ``B = diag(q) F / ‖F‖``."""
    f = np.asarray(features, dtype=np.float64)
    f = f / np.clip(np.linalg.norm(f, axis=1, keepdims=True), 1e-12, None)
    return f * np.asarray(quality, dtype=np.float64)[:, None]
