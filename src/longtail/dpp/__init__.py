"""Determinantal point processes: exact k-DPP samplers as pure functions (see kdpp.py)."""

from longtail.dpp.kdpp import (
    diag_rank1_dense, ipdpp_kernel, kdpp_probabilities, log_elementary_symmetric, quality_diversity_factor,
    sample_k_product, sample_kdpp_diag_rank1, sample_kdpp_dual, sample_kdpp_spectral, sample_projection_dpp,
)

__all__ = [
    "diag_rank1_dense", "ipdpp_kernel", "kdpp_probabilities", "log_elementary_symmetric", "quality_diversity_factor",
    "sample_k_product", "sample_kdpp_diag_rank1", "sample_kdpp_dual", "sample_kdpp_spectral", "sample_projection_dpp",
]
