"""Kill-and-resume and fuzz counts, recorded in benchmarks/results/fault_tolerance.json.

For N random kill points, ``longtail train`` runs as a subprocess on a small MNIST-format set
(written here), two stages (CE -> cRT) and an IP-DPP stage with subset redraws, is killed with
SIGKILL at a random moment (a random number of finished epochs plus a random fraction of the
next), resumed with ``--resume``, and its final weights are compared with an uninterrupted
run, bit for bit. Then the fuzz cases of the readers and the config
loader are counted: how many inputs were tried and how many ended in a clean LongtailError
(or a valid result), never another exception.

Run: ``python benchmarks/fault_tolerance.py [--kills 20]``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = [
    {"method": "ce", "epochs": 3, "batch_size": 32},
    {"method": "crt", "epochs": 2, "batch_size": 32},
    {"method": "ipdpp", "epochs": 4, "batch_size": 16, "method_args": {"k": 12, "redraw_every": 2}, "optimizer": {"name": "adamw", "lr": 0.001}},
]


def write_data(root: Path, seed: int = 0) -> Path:
    """A small learnable MNIST-format folder (brightness encodes the label)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", 60), ("t10k", 6)):
        labels = np.repeat(np.arange(10), n).astype(np.uint8)
        rng.shuffle(labels)
        imgs = np.clip(20 + 22 * labels[:, None, None] + rng.normal(0, 8, (len(labels), 8, 8)), 0, 255).astype(np.uint8)
        for name, arr in ((f"{prefix}-images-idx3-ubyte.gz", imgs), (f"{prefix}-labels-idx1-ubyte.gz", labels)):
            raw = bytes([0, 0, 8, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
            (root / name).write_bytes(gzip.compress(raw))
    return root


def write_config(path: Path, data_root: Path) -> Path:
    cfg = {"name": "fault", "data": {"dataset": "mnist", "root": str(data_root), "imbalance_factor": 10},
           "model": {"arch": "resnet8"}, "engine": {"threads": 1, "progress": False}, "eval": {"plots": False},
           "stages": STAGES}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(cfg: Path, out: Path, resume: bool = False) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "longtail", "train", str(cfg), "--out", str(out)] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def same_weights(a: Path, b: Path) -> bool:
    import torch

    x = torch.load(a / "model.pt", weights_only=True)
    y = torch.load(b / "model.pt", weights_only=True)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def kill_and_resume(cfg: Path, ref: Path, out: Path, after_epochs: int, delay_s: float) -> dict:
    """SIGKILL ``longtail train`` ``delay_s`` seconds after its ``after_epochs``-th epoch
    ended (so inside a later epoch, or at a stage boundary), resume it, and compare with the
    uninterrupted run ``ref``."""
    p = _train(cfg, out)
    hist = out / "history.csv"
    while p.poll() is None and (not hist.exists() or len(hist.read_text().splitlines()) - 1 < after_epochs):
        time.sleep(0.02)
    time.sleep(delay_s)
    killed = p.poll() is None
    if killed:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    epochs_done = max(0, len((out / "history.csv").read_text().splitlines()) - 1) if (out / "history.csv").exists() else 0
    r = _train(cfg, out, resume=True)
    _, err = r.communicate(timeout=600)
    ok = r.returncode == 0 and same_weights(ref, out)
    return {"after_epochs": after_epochs, "delay_s": round(delay_s, 3), "killed": killed, "epochs_done_at_kill": epochs_done, "resumed_rc": r.returncode,
            "identical": ok, "stderr_tail": err[-300:] if r.returncode else ""}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/fault_tolerance.json"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cfg = write_config(d / "cfg.yaml", write_data(d / "data"))
        t = time.perf_counter()
        ref = _train(cfg, d / "ref")
        ref.communicate()
        full_s = time.perf_counter() - t
        epochs = sum(s["epochs"] for s in STAGES)
        with open(d / "ref" / "history.csv") as f:
            per_epoch = float(np.mean([float(r["seconds"]) for r in csv.DictReader(f)]))
        kills = []
        for i in range(args.kills):
            res = kill_and_resume(cfg, d / "ref", d / f"k{i}", rng.randrange(epochs - 1), rng.uniform(0.0, 0.9) * per_epoch)
            print(json.dumps(res), flush=True)
            kills.append(res)
    fuzz = fuzz_counts(args.seed)
    out = {"kill_points": len(kills), "killed_mid_run": sum(k["killed"] for k in kills),
           "resumed_identical": sum(k["identical"] for k in kills), "runs": kills, "uninterrupted_s": round(full_s, 1),
           "fuzz": fuzz, "date": time.strftime("%Y-%m-%d"), "command": "python benchmarks/fault_tolerance.py " + " ".join(sys.argv[1:])}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))


def fuzz_counts(seed: int, cases: int = 300) -> dict:
    """Random damage to each input type; count inputs and clean outcomes."""
    import pickle

    from longtail.config import load_config
    from longtail.data import formats
    from longtail.errors import LongtailError

    rng = np.random.default_rng(seed)
    counts = {}

    def damage(raw: bytes) -> bytes:
        b = bytearray(raw)
        for _ in range(rng.integers(0, 4)):
            if b:
                b[rng.integers(len(b))] ^= int(rng.integers(1, 256))
        return bytes(b[: rng.integers(0, len(b) + 1)])

    def tally(name, fn):
        clean, unclean = 0, []
        for _ in range(cases):
            try:
                fn()
                clean += 1
            except LongtailError:
                clean += 1
            except Exception as e:  # noqa: BLE001 — counted as unclean, with a sample kept
                unclean.append(f"{type(e).__name__}: {str(e)[:120]}")
        counts[name] = {"cases": cases, "clean": clean, "unclean_examples": unclean[:3]}

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        arr = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
        good_idx = gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", 3, 4, 5) + arr.tobytes())
        good_cifar = pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}, protocol=2)

        def idx_case():
            (d / "x.gz").write_bytes(damage(good_idx))
            formats.read_idx(d / "x.gz")

        def cifar_case():
            (d / "test_batch").write_bytes(damage(good_cifar))
            formats.read_cifar_split(d, 10, train=False)

        def config_case():
            keys = ["data", "stages", "seed", "model", "bogus", "engine", "start_stage"]
            values = [None, -1, 0.5, "x", [1], {"epochs": -1}, {"imbalance_factor": 0.5}, [{"method": "nope"}], float("nan")]
            doc = {keys[rng.integers(len(keys))]: values[rng.integers(len(values))] for _ in range(rng.integers(1, 4))}
            (d / "c.yaml").write_text(yaml.safe_dump(doc))
            load_config(d / "c.yaml")

        def list_case():
            rows = [f"{rng.choice(['a.png', 'missing.png', 'a.png'])} {rng.choice(['0', '1', '7', '-1', 'x'])}" for _ in range(rng.integers(0, 5))]
            (d / "l.txt").write_text("\n".join(rows))
            formats.read_list_file(d / "l.txt", d, num_classes=3)

        tally("idx", idx_case)
        tally("cifar_pickle", cifar_case)
        tally("config", config_case)
        tally("list_file", list_case)
    return counts


if __name__ == "__main__":
    main()
