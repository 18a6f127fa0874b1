import torch


def effective_number_weights(counts, beta: float = 0.9999) -> torch.Tensor:
    """Class-balanced weights by the effective number of samples (Cui et al., CVPR 2019, Eq. 2-3).

    ``E_n = (1 - β^n) / (1 - β)``; ``w_c = 1 / E_{n_c} = (1 - β) / (1 - β^{n_c})``, rescaled so
    ``Σ_c w_c = C``. β = 0 gives uniform weights; β → 1 gives inverse frequency.
    """
    n = torch.as_tensor(counts, dtype=torch.float64)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n)) if beta > 0 else torch.ones_like(n)
    return (w / w.sum() * len(n)).float()
