"""What an epoch will cost, before it runs: a few training steps of the configured network on
random images of the run's input size, timed, times the steps of an epoch. Seconds, so that a
first try on a CPU says "about 20 min an epoch" before the twenty minutes, not after."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F


def epoch_seconds(cfg, num_classes: int, channels: int, size: int, train_images: int, steps: int = 3) -> float:
    """Seconds an epoch of ``cfg``'s first stage takes here, from ``steps`` timed training steps
    (forward, backward, SGD) of its network at batch ``batch_size`` and ``size`` px, after one
    untimed step; the data path is not counted."""
    from longtail.engine.runtime import pick_device
    from longtail.models import build_model

    st = cfg.stages[0]
    device = pick_device(cfg.engine.device)
    torch.manual_seed(0)
    model = build_model(cfg.model.arch, num_classes, channels, cfg.model.head).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    batch = min(st.batch_size, max(train_images, 2))
    x = torch.rand(batch, channels, size, size, device=device)
    y = torch.randint(0, num_classes, (batch,), device=device)
    timings = []
    for i in range(steps + 1):
        t = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            timings.append(time.perf_counter() - t)
    return math.ceil(train_images / st.batch_size) * sorted(timings)[len(timings) // 2]


def say(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
