import torch
import torch.nn.functional as F

from longtail.losses.precision import fp32


@fp32
def focal_loss(logits: torch.Tensor, y: torch.Tensor, gamma: float = 1.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Focal loss (Lin et al., ICCV 2017, Eq. 5): mean of ``-w_y (1 - p_y)^γ log p_y``.

    γ = 0 is (weighted) cross-entropy. The mean is over samples, as in the LDAM-DRW code
    (not normalised by the weights).
    """
    logp = F.log_softmax(logits.float(), dim=1).gather(1, y[:, None]).squeeze(1)
    loss = -((1 - logp.exp()) ** gamma) * logp if gamma else -logp
    if weight is not None:
        loss = loss * weight.to(loss.device)[y]
    return loss.mean()
