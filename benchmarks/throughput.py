"""Training throughput (images/s) of ResNet-32 on Fashion-MNIST-LT, batch 128, in one run:

(a) ``model_only``  the model alone: forward + backward + SGD step on one pre-made in-memory
                    batch (the ceiling for any data pipeline);
(b) ``engine``      longtail's engine end to end (epoch draw, batch augmentation on tensors,
                    normalisation, the step), one epoch of the real training set;
(c) ``plain_loop``  the textbook PyTorch loop: a Dataset doing per-image Pillow crop + flip +
                    to-tensor, a DataLoader (best of 0 and 2 workers), the same model and
                    step in PyTorch's default NCHW layout. The same loop with the model in
                    channels_last is recorded too (``plain_loop_channels_last_img_s``): it
                    separates what the data path gains from what the memory format gains.

Same model, batch size, threads and precision (fp32) for all.
Writes benchmarks/results/throughput.json. Run: ``python benchmarks/throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from longtail.config import load_config
from longtail.data.datasets import build_splits
from longtail.engine.runtime import machine_description
from longtail.engine.trainer import Trainer
from longtail.models import build_model

ROOT = Path(__file__).resolve().parents[1]


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


def model_only(n_batches, bs, channels_last):
    m, opt = _model(1, channels_last)
    step = _step_fn(m, opt, channels_last)
    x, y = torch.randn(bs, 1, 28, 28), torch.randint(0, 10, (bs,))
    for _ in range(3):
        step(x, y)
    t = time.perf_counter()
    for _ in range(n_batches):
        step(x, y)
    return n_batches * bs / (time.perf_counter() - t)


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


def engine(cfg_overrides):
    cfg = load_config(ROOT / "configs/demo.yaml", ["stages=[{method: ce, epochs: 1, batch_size: 128}]",
                                                   "engine.progress=false", "eval.plots=false", *cfg_overrides])
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(cfg, d, log=lambda m: None)
        # the epoch itself: what _train_epoch reports (draw, augmentation, steps); no evaluation
        rs = tr.stages[0]
        model = tr._build_model()
        method, opt = tr._setup_stage(model, rs)
        row = tr._train_epoch(model, method, opt, rs, 0)
    return row["img_s"], row["images"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=50, help="timed batches per measurement")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many measurements (shared CPUs are noisy)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/throughput.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bs, cl = 128, True
    cfg = load_config(ROOT / "configs/demo.yaml")
    train = build_splits(cfg.data).train
    images, labels = train.images.numpy(), train.labels.numpy()
    best = lambda f, *a: max(f(*a) for _ in range(args.repeats))  # noqa: E731
    a = best(model_only, args.batches, bs, cl)
    print(f"(a) model only: {a:.1f} img/s", flush=True)
    b, n = max(engine([f"engine.threads={args.threads}"]) for _ in range(args.repeats))
    print(f"(b) engine:     {b:.1f} img/s ({n} images, one epoch)", flush=True)
    c = {w: best(plain_loop, images, labels, args.batches, bs, False, w) for w in (0, 2)}
    print(f"(c) plain loop: {c[0]:.1f} img/s (0 workers), {c[2]:.1f} img/s (2 workers)", flush=True)
    c_cl = {w: best(plain_loop, images, labels, args.batches, bs, True, w) for w in (0, 2)}
    print(f"    plain loop, channels_last model: {c_cl[0]:.1f} / {c_cl[2]:.1f} img/s", flush=True)
    best_c, best_c_cl = max(c.values()), max(c_cl.values())
    result = {
        "model_only_img_s": round(a, 1), "engine_img_s": round(b, 1), "plain_loop_img_s": round(best_c, 1),
        "plain_loop_by_workers": {str(k): round(v, 1) for k, v in c.items()},
        "plain_loop_channels_last_img_s": round(best_c_cl, 1),
        "engine_vs_plain_loop_channels_last": round(b / best_c_cl, 3),
        "engine_vs_model_only": round(b / a, 3), "engine_vs_plain_loop": round(b / best_c, 3),
        "repeats": args.repeats, "timed_batches": args.batches,
        "model": "resnet32", "batch_size": bs, "channels_last": cl, "precision": "fp32",
        "data": "fashion_mnist_lt IF 100 (14,886 images, 1x28x28)",
        "machine": machine_description(torch.device("cpu")), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        "command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:]),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
