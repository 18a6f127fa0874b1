"""Decoding JPEGs every epoch against reading a prepared copy (``data.cache``), in images/s.

Generates ``--images`` JPEGs of ImageNet's typical size (sides drawn from 333-500 px, quality
90: smooth colour fields with edges and grain, so they compress like photographs, not like
noise or flat colour), then measures the epoch as training sees it, uint8 batches of
``--batch`` images delivered in a shuffled order:

- ``pillow``  today's path without a cache: ``DataLoader`` workers (all cores) decode each file
              with Pillow, resize its shorter side to ``--resize`` and centre-crop;
- ``cache``   the same images read from their prepared shards (``longtail prepare``), the
              page cache warm, as on every epoch after the first;
- ``cache + rrc (CPU)``  the cache path followed by the training crop (random resized crop to
              ``--size`` and flip) on the CPU; on a GPU this crop runs on the device.

The one-time cost of preparing is recorded too. Pipelines are interleaved (pillow, cache,
cache + rrc, pillow, ...) over ``--repeats`` epochs each; medians with their range. Writes
``benchmarks/results/decode_cache.json``. Run: ``python benchmarks/decode_cache.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from longtail.data import cache
from longtail.data.augment import rrc_flip
from longtail.data.images import FileImages, LabeledImages
from longtail.data.loader import BatchSource
from longtail.engine.runtime import machine_description

ROOT = Path(__file__).resolve().parents[1]


def photo_like(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth colour field (a few low-frequency waves) with hard-edged blobs and grain."""
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(3):
            fy, fx, ph = rng.uniform(0.5, 6, 2).tolist() + [rng.uniform(0, 6.3)]
            img[..., c] += rng.uniform(20, 60) * np.sin(2 * np.pi * (fy * yy + fx * xx) + ph)
    img += 120
    for _ in range(6):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += rng.uniform(-80, 80, 3)
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_jpegs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        long, short = 500, int(rng.integers(333, 501))
        h, w = (short, long) if rng.random() < 0.75 else (long, short)  # most photographs are landscape
        paths.append(folder / f"{i:05d}.jpg")
        Image.fromarray(photo_like(rng, h, w)).save(paths[-1], quality=90)
    return paths


def epoch(source: BatchSource, n: int, batch: int, seed: int, crop: int | None = None) -> float:
    """Images/s of one shuffled pass (each batch cropped if asked)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    seen = 0
    for x, _, _ in source.batches(order, batch):  # a batch arrives decoded (or copied) in full
        if crop:
            x = rrc_flip(x, g, size=crop)
        seen += int(x.shape[0])
    return seen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--resize", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/decode_cache.json"))
    args = ap.parse_args()
    workers = os.cpu_count() or 1
    load = os.getloadavg()[0]  # other work on the machine slows both paths alike (interleaved)
    torch.set_num_threads(workers)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp) / "jpeg", args.images)
        mean_kb = sum(p.stat().st_size for p in paths) / len(paths) / 1024
        files = FileImages(paths, args.resize, 3)
        labels = torch.zeros(len(paths), dtype=torch.long)
        t0 = time.perf_counter()
        prepared = cache.prepare(files, str(Path(tmp) / "cache"), workers=workers, log=lambda m: None)
        prepare_s = time.perf_counter() - t0
        sources = {"pillow": BatchSource(LabeledImages(files, labels, 1), torch.device("cpu"), workers),
                   "cache": BatchSource(LabeledImages(prepared, labels, 1), torch.device("cpu"), workers)}
        epoch(sources["pillow"], len(paths), args.batch, 99)  # starts the persistent workers
        epoch(sources["cache"], len(paths), args.batch, 99)  # warms the page cache
        rates = {"pillow": [], "cache": [], "cache_rrc_cpu": []}
        for r in range(args.repeats):
            rates["pillow"].append(epoch(sources["pillow"], len(paths), args.batch, r))
            rates["cache"].append(epoch(sources["cache"], len(paths), args.batch, r))
            rates["cache_rrc_cpu"].append(epoch(sources["cache"], len(paths), args.batch, r, crop=args.size))
    med = {k: statistics.median(v) for k, v in rates.items()}
    out = {
        "pillow_img_s": round(med["pillow"], 1), "cache_img_s": round(med["cache"], 1),
        "ratio": round(med["cache"] / med["pillow"], 1),
        "cache_rrc_cpu_img_s": round(med["cache_rrc_cpu"], 1),
        "ratio_with_rrc_on_cpu": round(med["cache_rrc_cpu"] / med["pillow"], 1),
        "range_img_s": {k: [round(min(v), 1), round(max(v), 1)] for k, v in rates.items()},
        "prepare_img_s": round(len(paths) / prepare_s, 1),
        "images": len(paths), "mean_jpeg_kib": round(mean_kb, 1), "long_side": 500, "short_side": [333, 500],
        "resize": args.resize, "crop": args.size, "batch": args.batch, "repeats": args.repeats,
        "workers": workers, "load_average_at_start": round(load, 2), "machine": machine_description(torch.device("cpu")), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"), "command": "python benchmarks/decode_cache.py",
        "note": "pillow: DataLoader workers decode + resize every epoch; cache: uint8 shards (data.cache), warm page "
                "cache; cache_rrc_cpu adds the training crop on the CPU (on a GPU it runs on the device)",
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
