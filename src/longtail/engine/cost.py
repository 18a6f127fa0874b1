"""What an epoch will cost, before it runs: a few training steps of the run's first stage, timed,
times the steps of an epoch. Seconds, so that a first try on a CPU says "about 20 min an epoch"
before the twenty minutes, not after.

The steps are the engine's own (the trainer's data path, augmentation, precision, memory
format, the stage's method with its views, extra batches and modules, the optimiser) on a
throwaway copy of the model, so a BNS stage is timed with its two SimCLR views and its
projection head, and a bf16 run in bf16. Nothing of the run changes: the trainer seeds every
stage and epoch itself, and the copy is discarded."""

from __future__ import annotations

import time

import torch


def no_estimate(trainer) -> str | None:
    """Why a few timed steps cannot stand for an epoch of this run, or None when they can."""
    if trainer.dist.active:
        return "under torchrun a step is a collective every rank must join"
    if trainer.cfg.engine.compile:
        return "with engine.compile the first steps compile"
    if trainer.cfg.stages[0].epochs == 0:
        return "the first stage trains nothing"
    return None


def epoch_seconds(trainer, steps: int = 3) -> float | None:
    """Seconds an epoch of ``trainer``'s first stage takes here: the median of ``steps`` timed
    optimiser steps on real training batches, after one untimed step, times the epoch's steps;
    None where :func:`no_estimate` gives a reason."""
    from longtail.engine.runtime import generator

    if no_estimate(trainer):
        return None
    cfg, rs = trainer.cfg, trainer.stages[0]
    log, trainer.log = trainer.log, (lambda msg: None)  # the method's notes come once, from the run
    try:
        model = trainer._build_model()
        method, opt = trainer._setup_stage(model, rs)
        trainer._set_train_mode(model, rs)
        step_module = trainer._step_module(model, method)
        aug = cfg.augment_for(rs.cfg)
        gen = generator(cfg.seed, "cost")
        bs = min(rs.cfg.batch_size, len(trainer.train_set))
        # drawn with replacement, so that a training set smaller than the steps still fills them
        order = torch.randint(len(trainer.train_set), (bs * (steps + 1),), generator=gen)
        batches = trainer.source.batches(order, bs)
        extras = {name: trainer.source.batches(order, bs) for name in method.extra_samplers}
        timings = []
        for i in range(steps + 1):
            t = time.perf_counter()
            xb, yb, ib = next(batches)
            extra = {name: next(it) for name, it in extras.items()}
            opt.zero_grad(set_to_none=True)
            trainer._gradients(step_module, xb, yb, ib, extra, gen, aug, rs.cfg.accumulate)
            opt.step()
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                timings.append(time.perf_counter() - t)
    finally:
        trainer.log = log
        trainer._step = None
    return trainer._steps_per_epoch(rs) * sorted(timings)[len(timings) // 2]


def say(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
