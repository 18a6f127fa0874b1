import numpy as np
import torch
import torch.nn.functional as F

from longtail.losses.precision import fp32


def ride_diversity_weights(counts, reweight_factor: float = 0.05) -> torch.Tensor:
    """RIDE's per-class diversity temperatures' weights (github frank-xwang/RIDE-LongTailRecognition,
    ``model/loss.py``, ``RIDELoss.__init__``): ``w_c = C π_c f + 1 − f``, divided by its maximum."""
    pi = np.asarray(counts, dtype=np.float64)
    pi = pi / pi.sum()
    w = len(pi) * pi * reweight_factor + 1 - reweight_factor
    return torch.tensor(w / w.max(), dtype=torch.float32)


@fp32
def ride_loss(expert_logits: torch.Tensor, y: torch.Tensor, margins: torch.Tensor, scale: float = 30.0,
              diversity_factor: float = -0.45, temperature: float = 1.0, weight: torch.Tensor | None = None,
              diversity_weights: torch.Tensor | None = None, base_factor: float = 1.0) -> torch.Tensor:
    """RIDE's training loss (Wang et al., ICLR 2021; ``model/loss.py``, ``RIDELoss.forward``) on the
    experts' cosine logits ``E`` = ``B × n × K`` (n experts), ensemble ``z̄ = mean_i s·E_i``::

        L = Σ_i [ f_b · LDAM(s·E_i, y; Δ, w)  +  λ T̄² · KL( softmax(z̄ / T) ‖ log_softmax(s·E_i / T) ) ]

    LDAM here subtracts ``s·Δ_y`` from the target logit (the logits carry s already) and takes
    class weights w after the DRW epoch; ``λ`` = ``diversity_factor`` (negative: the experts are
    rewarded for differing from the ensemble); ``T = temperature · diversity_weights`` per class
    after the DRW epoch (``T̄`` its mean), ``temperature`` before; the ensemble side is held constant."""
    z = scale * expert_logits
    mean = z.mean(dim=1)
    t = temperature if diversity_weights is None else temperature * diversity_weights.to(z.device)[None, :]
    t_mean = temperature if diversity_weights is None else t.mean()  # a tensor: no read-back to the host
    with torch.no_grad():
        target = F.softmax(mean / t, dim=1)
    onehot = F.one_hot(y, z.shape[-1]).to(z.dtype)
    shift = scale * margins.to(z.device)[y][:, None] * onehot
    w = None if weight is None else weight.to(z.device)
    loss = z.new_zeros(())
    for i in range(z.shape[1]):
        loss = loss + base_factor * F.cross_entropy(z[:, i] - shift, y, weight=w)
        if diversity_factor:
            loss = loss + diversity_factor * t_mean * t_mean * F.kl_div(F.log_softmax(z[:, i] / t, dim=1), target,
                                                                          reduction="batchmean")
    return loss
