"""Feature geometry of trained backbones: how tight the classes are, as BNS's Thm 4.1 (BNS
minimises intra-class distance) and PIF's "more clustered features" predict.

For each run of the methods suite it embeds the (balanced) test set with the run's exported
model (pooled features, L2-normalised) and reports, per seed:

* ``intra``: mean over classes of the mean pairwise cosine distance between two test images
  of the class, ``1 − (‖Σ z‖² − n) / (n (n − 1))``;
* ``intra_tail``: the same over the tail half of the classes (fewest training images);
* ``inter``: mean cosine distance between the class-mean directions of two classes;
* ``ratio``: intra / inter (scale-free: lower = tighter, better separated clusters).

Needs the run folders of ``longtail bench benchmarks/suites/fashion_mnist_lt_methods.yaml``
(runs/bench/fashion_mnist_lt_baselines/<method>/seed<k>). Writes
benchmarks/results/feature_geometry.json. Run: ``python benchmarks/feature_geometry.py``; for
the converged suite's runs: ``python benchmarks/feature_geometry.py --runs
runs/bench/fashion_mnist_lt_converged/if100 --out
benchmarks/results/fashion_mnist_lt_converged/feature_geometry.json``; for the authors' PIF
(the embedding is the pooled output of its layer, the model's own representation; RIDE's is its
experts' side by side): ``--runs runs/bench/fashion_mnist_lt_pih2t_authors --methods ce_mixup
ce_mixup_pif gcl_stage1 gcl_pif_stage1 ride ride_pif ce ce_pif_eq --out
benchmarks/results/fashion_mnist_lt_pih2t_authors/feature_geometry.json``.

``--before-neck`` embeds with the pooled backbone features before a neck such as PIF: for a
linear head these are the folded network's features before its head (the deployed model is the
base architecture, ``Classifier.folded``), so runs with and without PIF are measured on the same
kind of features; for a cosine head (GCL, RIDE), where PIF does not fold, they are the backbone's
own representation. The suites' kept bases hold the stage-1 weights, so a fresh clone can
measure them: ``--runs benchmarks/results/fashion_mnist_lt_pih2t_authors/bases --before-neck``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from longtail.config import load_config
from longtail.engine.runtime import machine_description
from longtail.engine.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs/bench/fashion_mnist_lt_baselines"
# stage-1 models only: the classifier stages after them leave the backbone as it is
METHODS = ["ce", "ce_pif", "bns_repr", "bns1000_repr", "ldam_drw", "ldam_drw_pif", "balanced_softmax", "balanced_softmax_pif"]


def geometry(z: torch.Tensor, y: torch.Tensor, tail_classes: list[int]) -> dict:
    z = F.normalize(z.double(), dim=1)
    intra, means = {}, []
    for c in sorted(y.unique().tolist()):
        zc = z[y == c]
        n = len(zc)
        s = zc.sum(0)
        intra[c] = 1 - ((s @ s) - n).item() / (n * (n - 1))
        means.append(F.normalize(s, dim=0))
    m = torch.stack(means)
    cos = m @ m.T
    k = len(means)
    inter = (1 - (cos.sum() - k) / (k * (k - 1))).item()
    mean_intra = statistics.mean(intra.values())
    return {"intra": mean_intra, "intra_tail": statistics.mean(intra[c] for c in tail_classes), "inter": inter,
            "ratio": mean_intra / inter}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=str(RUNS))
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/feature_geometry.json"))
    ap.add_argument("--methods", nargs="+", default=METHODS, help=f"the stage-1 runs to read (default: {' '.join(METHODS)})")
    ap.add_argument("--before-neck", action="store_true",
                    help="embed with the pooled backbone features before a neck (PIF): the folded network's features")
    args = ap.parse_args()
    methods = args.methods
    rows = []
    for method in methods:
        for run in sorted(Path(args.runs, method).glob("seed*")):
            if not (run / "model.pt").is_file():
                continue
            cfg = load_config(run / "config.yaml", ["engine.progress=false"])
            trainer = Trainer(cfg, run, log=lambda m: None)
            model = trainer._build_model()
            model.load_state_dict(torch.load(run / "model.pt", map_location=trainer.device, weights_only=True))
            if args.before_neck:
                model.neck = None  # (the folded network's head changes; its features before the head do not)
            z, y = trainer.predict(model, trainer.splits.test, "embeddings")
            counts = trainer.class_counts
            tail = sorted(torch.argsort(counts, descending=True)[len(counts) // 2:].tolist())
            g = geometry(z.cpu(), y.cpu(), tail)
            rows.append({"method": method, "seed": cfg.seed, "imbalance_factor": cfg.data.imbalance_factor,
                         **{k: round(v, 5) for k, v in g.items()}})
            print(json.dumps(rows[-1]), flush=True)
    if not rows:
        sys.exit(f"no finished run (<method>/seed<k>/model.pt, methods {', '.join(methods)}) under {args.runs}: "
                 "pass the folder of the suite's runs at one IF, e.g. runs/bench/<suite>/if100 (a suite with tiers: "
                 "runs/bench/<suite>/<tier>/if100)")
    summary = {}
    for method in methods:
        rs = [r for r in rows if r["method"] == method]
        if rs:
            summary[method] = {k: [round(statistics.mean(r[k] for r in rs), 4), round(statistics.stdev(r[k] for r in rs), 4) if len(rs) > 1 else 0.0]
                               for k in ("intra", "intra_tail", "inter", "ratio")} | {"seeds": len(rs)}
    features = "pooled backbone features of the 10,000 test images" + (" before the neck (the folded network's)" if args.before_neck else "")
    out = {"rows": rows, "summary_mean_std": summary, "features": features + ", L2-normalised",
           "machine": machine_description(torch.device("cpu")), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "command": " ".join(["python", "benchmarks/feature_geometry.py", *sys.argv[1:]])}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
