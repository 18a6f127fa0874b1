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


def epoch_seconds(trainer, steps: int = 3, counts: dict | None = None) -> float | None:
    """Seconds an epoch of ``trainer``'s first stage takes here: the median of ``steps`` timed
    optimiser steps on real training batches, after one untimed step, times the epoch's steps;
    None where :func:`no_estimate` gives a reason. With ``counts`` (a dict), one more step is
    counted (:func:`counted`) and ``counts`` gets its ``ops`` and ``flops`` and the epoch's
    ``steps``."""
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
        order = torch.randint(len(trainer.train_set), (bs * (steps + 2),), generator=gen)
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
        if counts is not None:
            xb, yb, ib = next(batches)
            extra = {name: next(it) for name, it in extras.items()}

            def step():
                opt.zero_grad(set_to_none=True)
                trainer._gradients(step_module, xb, yb, ib, extra, gen, aug, rs.cfg.accumulate)
                opt.step()

            # the engine's own step: its data path and augmentation are in the count
            counts.update(zip(("ops", "flops"), counted(step)), steps=trainer._steps_per_epoch(rs), engine_ops=0)
    finally:
        trainer.log = log
        trainer._step = None
    return trainer._steps_per_epoch(rs) * sorted(timings)[len(timings) // 2]


class _OpCount(torch.utils._python_dispatch.TorchDispatchMode):
    """Every aten op dispatched: as the emulated CUDA device (tests/cuda_emulation) counts them,
    one op a kernel launch."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def counted(step) -> tuple[int, float]:
    """(ops, floating-point operations) of one call of ``step``, e.g. a training step."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as flops, _OpCount() as ops:
        step()
    return ops.ops, float(flops.get_total_flops())


# A GPU's step estimated from counts made on a CPU, and the assumptions it rests on (stated under
# `longtail bench --plan`'s table): the step takes the longer of its arithmetic at a share of the
# GPU's dense bf16 peak, and its ops one after another at eager PyTorch's cost of an op (the
# CPU-side dispatch and kernel launch that a small network's kernels wait on). Data on the device
# and no host synchronisation in a step (as tests/test_emulated_cuda.py checks) are assumed.
GPU_ASSUMED = {"gpu": "H100 SXM", "peak_tflops": 989.0, "utilisation": 0.4, "us_per_op": 6.0,
               # the engine's and the data path's ops a step besides the network's, optimiser and
               # loss (benchmarks/results/emulated_cuda.json, CE on ResNet-32: data 29 + engine 62)
               "engine_ops": 91}


def gpu_step_seconds(ops: int, flops: float, engine_ops: int | None = None) -> float:
    """Seconds a training step of ``ops`` ops and ``flops`` floating-point operations takes on
    :data:`GPU_ASSUMED`'s GPU: the longer of its arithmetic and its launches. ``engine_ops``: the
    ops of the engine and data path the count left out (default: the assumed ones; 0 where the
    count is of the engine's own step, :func:`epoch_seconds`)."""
    a = GPU_ASSUMED
    extra = a["engine_ops"] if engine_ops is None else engine_ops
    return max(flops / (a["peak_tflops"] * 1e12 * a["utilisation"]), (ops + extra) * a["us_per_op"] * 1e-6)


def feature_pass_seconds(trainer, batches: int = 2) -> float:
    """Seconds the frozen backbone of ``trainer``'s run takes to pool every image of every split
    once (a cache_features stage's one pass): ``batches`` batches timed as the pass runs them,
    after one untimed, times the images."""
    from longtail.engine.runtime import generator

    log, trainer.log = trainer.log, (lambda msg: None)
    try:
        model = trainer._build_model().eval()
        bs = 32 if trainer.device.type == "cpu" else trainer.cfg.engine.eval_batch_size
        gen = generator(trainer.cfg.seed, "cost")
        order = torch.randint(len(trainer.train_set), (bs * (batches + 1),), generator=gen)
        timings = []
        with torch.no_grad():
            for i, (x, _, _) in enumerate(trainer.source.batches(order, bs)):
                t = time.perf_counter()
                with trainer._autocast():
                    model.pool(model.features(trainer._prep(x, None)))
                if trainer.device.type == "cuda":
                    torch.cuda.synchronize()
                if i:
                    timings.append((time.perf_counter() - t) / len(x))
    finally:
        trainer.log = log
    n = len(trainer.train_set) + len(trainer.splits.test) + (len(trainer.splits.val) if trainer.splits.val is not None else 0)
    return n * sorted(timings)[len(timings) // 2]


def announce(trainer, log=print, timed: bool = True) -> None:
    """What a run will cost, said before it starts (``longtail train``, ``longtail info`` and
    ``longtail.train`` alike): the first stage's epoch timed on a few of its steps here (a
    cache_features stage: its one pass over the images), and a warning where other processes
    leave fewer free cores than the run's torch threads. ``timed: false`` only warns."""
    st, size, images = trainer.cfg.stages[0], trainer.train_set.image_size, len(trainer.train_set)
    t = None
    if timed and st.cache_features and not trainer.dist.active:
        t = feature_pass_seconds(trainer)
        log(f"estimated: about {say(t)} for the feature pass of {st.name or 'stage 1'} ({trainer.cfg.model.arch}, {size} x {size} "
            f"px, every split's images once, {trainer.precision}; timed on a few batches here; nothing if they are cached "
            f"already), then milliseconds an epoch")
    elif timed:
        t = epoch_seconds(trainer)
        if t is None:
            log(f"no estimate of an epoch ({no_estimate(trainer)}); history.csv gives each epoch's seconds")
        else:
            log(f"estimated: about {say(t)} an epoch of {st.name or 'stage 1'} ({trainer.cfg.model.arch}, {size} x {size} px, "
                f"batch {st.batch_size}, {images:,} images, {trainer.precision}; timed on a few of its steps here), "
                f"{say(t * st.epochs)} for its {st.epochs} epochs")
    _warn_crowded(trainer, log, t is not None)


def _warn_crowded(trainer, log, timed: bool) -> None:
    """A warning when other processes leave this CPU run fewer free cores than its torch threads,
    and (``timed``) the same few steps timed on the threads that fit, for comparison."""
    from longtail.engine.runtime import crowded_threads

    # (under torchrun the other ranks are this run's own processes)
    crowded = crowded_threads(torch.get_num_threads()) if trainer.device.type == "cpu" and not trainer.dist.active else None
    if crowded is None:
        return
    fit, why = crowded
    log(f"warning: {why}")
    if timed:
        threads = torch.get_num_threads()
        torch.set_num_threads(fit)
        try:
            t = feature_pass_seconds(trainer) if trainer.cfg.stages[0].cache_features else epoch_seconds(trainer)
        finally:
            torch.set_num_threads(threads)
        log(f"  with engine.threads={fit}: about {say(t)} {'for the pass' if trainer.cfg.stages[0].cache_features else 'an epoch'}, "
            "timed the same way")


def say(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
