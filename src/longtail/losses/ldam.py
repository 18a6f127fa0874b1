import torch
import torch.nn.functional as F

from longtail.losses.precision import fp32


def ldam_margins(counts, max_margin: float = 0.5) -> torch.Tensor:
    """Label-distribution-aware margins (Cao et al., NeurIPS 2019, Eq. 12):
    ``Δ_c = K / n_c^{1/4}`` with K chosen so that ``max_c Δ_c = max_margin``."""
    m = torch.as_tensor(counts, dtype=torch.float64).clamp(min=1).pow(-0.25)
    return (m * (max_margin / m.max())).float()


@fp32
def ldam_loss(cosine_logits: torch.Tensor, y: torch.Tensor, margins: torch.Tensor, scale: float = 30.0,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """LDAM: ``CE(s · (z − Δ_y e_y))`` on cosine logits z (normalised features and weights),
    optionally class-weighted (DRW). The weighted mean follows ``F.cross_entropy``."""
    z = cosine_logits.float()
    z = z - F.one_hot(y, z.shape[1]) * margins.to(z.device)[y][:, None]
    return F.cross_entropy(scale * z, y, weight=None if weight is None else weight.to(z.device))
