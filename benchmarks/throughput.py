"""Training throughput (images/s) of ResNet-32 on Fashion-MNIST-LT, batch 128:

(a) ``model_only``  the engine's own training step (its step module, optimiser, layout,
                    precision and grad-norm read-out) on one pre-made batch already on the
                    device: no epoch draw, no augmentation, no data movement. The ceiling for
                    the engine, measured on the very step it runs;
(b) ``engine``      longtail's engine end to end (epoch draw, batch augmentation on tensors,
                    normalisation, the step) over ``--batches`` batches of the real training set;
(c) ``plain_loop``  the textbook PyTorch loop: a Dataset doing per-image Pillow crop + flip +
                    to-tensor, a DataLoader (best of 0 and 2 workers), the same model and
                    step in PyTorch's default NCHW layout. The same loop with the model in
                    channels_last is recorded too (``plain_loop_channels_last_img_s``): it
                    separates what the data path gains from what the memory format gains.

The pipelines are interleaved (a b c c' a b c c' ...) so that a slow phase of a shared CPU, or
the warm-up of the first measurement, hits all of them alike; each reports the median of its
``--repeats`` measurements with their range. Same model, batch size, threads and precision.
Writes benchmarks/results/throughput.json. Run: ``python benchmarks/throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from longtail.config import load_config
from longtail.data.datasets import build_splits
from longtail.engine.runtime import machine_description, pick_device, resolve_precision
from longtail.engine.trainer import Trainer
from longtail.methods.base import Batch
from longtail.models import build_model

ROOT = Path(__file__).resolve().parents[1]
_SCRATCH = tempfile.TemporaryDirectory()  # run folders of the measurements, removed at exit


def _step_fn(model, opt, channels_last):
    def step(x, y):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _model(channels, channels_last):
    torch.manual_seed(0)
    m = build_model("resnet32", 10, channels)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    return m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4)


def _trainer(overrides, batches, bs):
    """A trainer for the engine's CE stage on at most ``batches`` x ``bs`` training images."""
    # IF 100 on 10 classes keeps 2.478 x n_max images: n_max sized so an epoch is `batches` batches
    n_max = max(math.ceil(batches * bs / 2.478), 100)  # >= 100: every class keeps an image
    cfg = load_config(ROOT / "configs/demo.yaml", [f"stages=[{{method: ce, epochs: 1, batch_size: {bs}}}]",
                                                   "engine.progress=false", "eval.plots=false", "model.arch=resnet32",
                                                   f"data.max_per_class={n_max}", *overrides])
    tr = Trainer(cfg, tempfile.mkdtemp(dir=_SCRATCH.name), log=lambda m: None)
    model = tr._build_model()
    method, opt = tr._setup_stage(model, tr.stages[0])
    return tr, model, method, opt


def model_only(overrides, batches, bs):
    """The engine's step on one batch that is already prepared on the device."""
    tr, model, method, opt = _trainer(overrides, batches, bs)
    tr._set_train_mode(model, tr.stages[0])
    step_module = tr._step_module(model, method)
    x, y, i = next(tr.source.batches(torch.arange(bs), bs))
    batch = Batch(tr._prep(x, None, None), y, i.to(tr.device))

    def step():
        if tr.graphs:
            torch.compiler.cudagraph_mark_step_begin()
        with tr._autocast():
            loss = step_module(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        torch.nn.utils.get_total_norm([p.grad for p in params], foreach=tr.foreach)
        opt.step()

    for _ in range(3):
        step()
    _sync(tr.device)
    t = time.perf_counter()
    for _ in range(batches):
        step()
    _sync(tr.device)
    return batches * bs / (time.perf_counter() - t)


def engine(overrides, batches, bs):
    """One epoch of ``batches`` batches through ``Trainer._train_epoch`` (after a warm-up epoch)."""
    tr, model, method, opt = _trainer(overrides, batches, bs)
    tr._train_epoch(model, method, opt, tr.stages[0], 0)  # warm-up: allocator, kernels
    row = tr._train_epoch(model, method, opt, tr.stages[0], 0)
    return row["img_s"]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PilDataset(torch.utils.data.Dataset):
    """The textbook pipeline: one uint8 image at a time through Pillow."""

    def __init__(self, images, labels, mean, std):
        self.images, self.labels, self.mean, self.std = images, labels, mean, std

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image, ImageOps

        im = Image.fromarray(self.images[i, 0])
        im = ImageOps.expand(im, border=4, fill=0)
        dx, dy = random.randint(0, 8), random.randint(0, 8)
        im = im.crop((dx, dy, dx + 28, dy + 28))
        if random.random() < 0.5:
            im = ImageOps.mirror(im)
        x = torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)[None]
        return (x - self.mean) / self.std, int(self.labels[i])


def plain_loop(images, labels, n_batches, bs, channels_last, workers):
    m, opt = _model(1, channels_last)
    step = _step_fn(m, opt, channels_last)
    ds = PilDataset(images, labels, 0.2860, 0.3530)
    dl = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers, drop_last=True,
                                     persistent_workers=workers > 0)
    it = iter(dl)
    for _ in range(3):
        step(*next(it))
    t = time.perf_counter()
    for _ in range(n_batches):
        step(*next(it))
    return n_batches * bs / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=50, help="timed batches per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="measurements per pipeline, interleaved; the median is reported")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/throughput.json"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", help="engine.precision (auto: bf16 on CUDA and on CPUs with native bf16)")
    ap.add_argument("--compile", action="store_true", help="engine.compile: torch.compile the backbone")
    ap.add_argument("--graphs", action="store_true", help="engine.cuda_graphs (with --compile): the backbone's forward and "
                                                          "backward replayed as CUDA graphs")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--arch", default="resnet32")
    ap.add_argument("--data-root", default="", help="Fashion-MNIST idx folder (default: the demo config's)")
    ap.add_argument("--skip-plain", action="store_true", help="only (a) and (b): the textbook loops are CPU pipelines")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bs, cl = args.batch_size, True
    over = [f"engine.threads={args.threads}", f"engine.precision={args.precision}", f"engine.device={args.device}",
            f"engine.compile={str(args.compile or args.graphs).lower()}", f"engine.cuda_graphs={str(args.graphs).lower()}",
            f"model.arch={args.arch}"]
    over += [f"data.root={args.data_root}"] if args.data_root else []
    cfg = load_config(ROOT / "configs/demo.yaml", over[-1:] if args.data_root else [])
    pipelines = {"model_only": lambda: model_only(over, args.batches, bs), "engine": lambda: engine(over, args.batches, bs)}
    if not args.skip_plain:
        train = build_splits(cfg.data).train
        images, labels = train.images.numpy(), train.labels.numpy()
        pipelines.update({
            "plain_loop_w0": lambda: plain_loop(images, labels, args.batches, bs, False, 0),
            "plain_loop_w2": lambda: plain_loop(images, labels, args.batches, bs, False, 2),
            "plain_loop_cl_w0": lambda: plain_loop(images, labels, args.batches, bs, True, 0),
            "plain_loop_cl_w2": lambda: plain_loop(images, labels, args.batches, bs, True, 2),
        })
    runs = {k: [] for k in pipelines}
    for r in range(args.repeats):  # interleaved: a b c ... a b c ...
        for k, f in pipelines.items():
            runs[k].append(f())
            print(f"round {r + 1}/{args.repeats} {k}: {runs[k][-1]:.1f} img/s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    a, b = med["model_only"], med["engine"]
    result = {"model_only_img_s": round(a, 1), "engine_img_s": round(b, 1), "engine_vs_model_only": round(b / a, 3)}
    if not args.skip_plain:
        c = {"0": med["plain_loop_w0"], "2": med["plain_loop_w2"]}
        c_cl = {"0": med["plain_loop_cl_w0"], "2": med["plain_loop_cl_w2"]}
        best_c, best_c_cl = max(c.values()), max(c_cl.values())
        result.update({
            "plain_loop_img_s": round(best_c, 1), "plain_loop_by_workers": {k: round(v, 1) for k, v in c.items()},
            "plain_loop_channels_last_img_s": round(best_c_cl, 1),
            "engine_vs_plain_loop_channels_last": round(b / best_c_cl, 3), "engine_vs_plain_loop": round(b / best_c, 3)})
    device = pick_device(args.device)
    result.update({
        "measurements": {k: [round(x, 1) for x in v] for k, v in runs.items()},
        "range": {k: [round(min(v), 1), round(max(v), 1)] for k, v in runs.items()},
        "statistic": f"median of {args.repeats} interleaved measurements",
        "repeats": args.repeats, "timed_batches": args.batches,
        "model": args.arch, "batch_size": bs, "channels_last": cl,
        "precision": resolve_precision(args.precision, device), "compile": args.compile or args.graphs,
        "cuda_graphs": args.graphs and device.type == "cuda",
        "data": "fashion_mnist_lt IF 100, 1x28x28 (the engine: its first images, one epoch of the timed batches)",
        "machine": machine_description(device), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:]),
    })
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
