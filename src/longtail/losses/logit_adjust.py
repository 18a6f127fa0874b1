import torch
import torch.nn.functional as F

from longtail.losses.precision import fp32


def log_prior(counts) -> torch.Tensor:
    """``log π_c`` with ``π_c = n_c / N``."""
    n = torch.as_tensor(counts, dtype=torch.float64)
    return (n / n.sum()).log().float()


@fp32
def logit_adjusted_loss(logits: torch.Tensor, y: torch.Tensor, counts, tau: float = 1.0) -> torch.Tensor:
    """Logit-adjusted loss (Menon et al., ICLR 2021, Eq. 10): ``CE(z + τ log π)``."""
    return F.cross_entropy(logits.float() + tau * log_prior(counts).to(logits.device), y)


@fp32
def balanced_softmax_loss(logits: torch.Tensor, y: torch.Tensor, counts) -> torch.Tensor:
    """Balanced Softmax (Ren et al., NeurIPS 2020, Eq. 4): ``CE(z + log π)``; predict with z.
    The logit-adjusted loss at τ = 1."""
    return logit_adjusted_loss(logits, y, counts, 1.0)


def posthoc_adjust(logits: torch.Tensor, counts, tau: float = 1.0) -> torch.Tensor:
    """Post-hoc logit adjustment (Menon et al., Eq. 9): predict ``argmax(z − τ log π)``."""
    return logits - tau * log_prior(counts).to(logits.device)
