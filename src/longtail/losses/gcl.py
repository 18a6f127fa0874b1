import torch
import torch.nn.functional as F

from longtail.losses.precision import fp32


def gcl_offsets(counts) -> torch.Tensor:
    """GCL's per-class cloud sizes before scaling: ``log n_max − log n_c`` (github Keke921/GCLLoss,
    ``losses.py:57-59``), 0 for the largest class."""
    logn = torch.as_tensor(counts, dtype=torch.float64).clamp(min=1).log()
    return (logn.max() - logn).float()


def gcl_noise(shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """``|N(0, 1/3)|`` clamped to ``[0, 1]``: one draw per logit (``losses.py:65, 75``;
    ``normal.Normal(0, 1/3).sample(cosine.shape).clamp(-1, 1)``, then ``.abs()``)."""
    return (torch.randn(shape, generator=generator, device=device) / 3.0).clamp(-1, 1).abs()


@fp32
def gcl_loss(cosine: torch.Tensor, y: torch.Tensor, offsets: torch.Tensor, noise: torch.Tensor, margin: float = 0.0,
             scale: float = 30.0, noise_mul: float = 0.5, focal_gamma: float | None = None,
             weight: torch.Tensor | None = None) -> torch.Tensor:
    """Gaussian clouded logit loss (Li et al., CVPR 2022; ``losses.py:71-83``)::

        z̃_c = cos_c − noise_mul · |ε_c| · o_c / max_k o_k,   o_c = log n_max − log n_c
        z̃_y ← z̃_y − m
        L   = CE(s · z̃, y)                         (stage 1: ``train_cls=False``)
        L   = mean_i (1 − p_i)^γ · CE_i,  p_i = exp(−CE_i) held constant   (classifier stage)

    Tail classes get larger clouds (their logits pushed down at random during training), so
    their features must sit further inside their region. ``noise`` is the ``|N(0, 1/3)|``
    draw (:func:`gcl_noise`), one per logit."""
    o = offsets.to(cosine.device)
    z = cosine - noise_mul * noise.to(cosine.device) / o.max().clamp(min=1e-12) * o
    z = z - margin * F.one_hot(y, z.shape[1])
    w = None if weight is None else weight.to(z.device)
    if focal_gamma is None:
        return F.cross_entropy(scale * z, y, weight=w)
    ce = F.cross_entropy(scale * z, y, reduction="none", weight=w)
    p = torch.exp(-ce)
    return ((1 - p.detach()) ** focal_gamma * ce).mean()  # losses.py:9-13
