import math

import torch
import torch.nn.functional as F

from longtail.losses.precision import fp32


def las_smoothing(counts, smooth_head: float, smooth_tail: float) -> torch.Tensor:
    """MiSLAS's label-aware smoothing factors, concave shape (Zhong et al., CVPR 2021, Eq. 5;
    github dvlab-research/MiSLAS, ``methods.py:38-39``)::

        ε_c = ε_K + (ε_1 − ε_K) · sin(π (n_c − n_K) / (2 (n_1 − n_K)))

    ``n_1`` / ``n_K`` the largest / smallest class, ``ε_1`` = ``smooth_head``, ``ε_K`` = ``smooth_tail``."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    n1, nk = float(n.max()), float(n.min())
    if n1 == nk:  # balanced: every class is head and tail alike
        return torch.full_like(n, smooth_head).float()
    return (smooth_tail + (smooth_head - smooth_tail) * torch.sin((n - nk) * math.pi / (2 * (n1 - nk)))).float()


@fp32
def label_aware_smoothing_loss(logits: torch.Tensor, y: torch.Tensor, smoothing: torch.Tensor) -> torch.Tensor:
    """``mean_i [ (1 − ε_{y_i}) (−log p_{y_i}) + ε_{y_i} · mean_c (−log p_c) ]`` (MiSLAS,
    ``methods.py:55-64``: the smoothed mass spread uniformly over all K classes)."""
    logp = F.log_softmax(logits, dim=-1)
    eps = smoothing.to(logits.device)[y]
    nll = -logp.gather(1, y[:, None]).squeeze(1)
    return ((1.0 - eps) * nll + eps * (-logp.mean(dim=-1))).mean()
