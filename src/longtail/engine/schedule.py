"""Learning-rate schedules as pure functions of training progress (epochs, fractional), so a
resumed run needs no scheduler state."""

from __future__ import annotations

import bisect
import math


def learning_rate(cfg, base_lr: float, t: float, total_epochs: int, dt: float = 0.0) -> float:
    """lr at progress ``t`` (in epochs, e.g. 3.25 = a quarter into the 4th epoch); ``dt`` is
    one step in epochs, so the first warm-up step is not zero.

    Linear warm-up over ``warmup_epochs`` to ``base_lr``, then
    ``cosine`` (to ``min_lr`` at the end), ``multistep`` (× ``gamma`` at each milestone epoch;
    LDAM-DRW: milestones 160, 180, gamma 0.01 per its code) or ``constant``.

    ``cfg.step == "epoch"`` holds the lr fixed through each epoch at its value for the epoch
    index e: warm-up ``base_lr (e + 1) / w``, cosine ``base_lr (1 + cos(π e / E)) / 2`` (never
    reaching 0 in the last epoch), as H2T's ``train_stage1/2.py: adjust_learning_rate`` do.
    """
    if cfg.step == "epoch":  # one lr per epoch, from its index alone
        t, dt = float(math.floor(t + 1e-9)), 1.0
    w = cfg.warmup_epochs
    if w > 0 and t < w:
        return base_lr * min(1.0, (t + dt) / w)
    if cfg.name == "cosine":
        span = max(total_epochs - w, 1e-12)
        frac = min(max((t - w) / span, 0.0), 1.0)
        return cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * frac))
    if cfg.name == "multistep":
        return base_lr * cfg.gamma ** bisect.bisect_right(cfg.milestones, int(math.floor(t + 1e-9)))
    return base_lr
