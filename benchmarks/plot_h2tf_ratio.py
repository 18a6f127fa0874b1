"""The fusion-ratio sweep of H2TF on Fashion-MNIST-LT as a plot: overall, head, tail and
tail-3 accuracy (mean over the suite's seeds) against ρ, where ρ = 0 is cRT (no fusion).

Reads benchmarks/results/fashion_mnist_lt_h2tf_ratio/results.json (made by
``longtail bench benchmarks/suites/fashion_mnist_lt_h2tf_ratio.yaml``) and writes
``h2tf_ratio.png`` next to it. Run: ``python benchmarks/plot_h2tf_ratio.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from longtail.evaluation.plots import plot_sweep

RESULTS = Path(__file__).resolve().parent / "results" / "fashion_mnist_lt_h2tf_ratio"


def ratio_of(row: dict) -> float:
    """ρ of a run from its own config (0 for a stage without H2TF)."""
    stage = row["config"]["stages"][-1]
    return float(stage["method_args"].get("h2tf", {}).get("ratio", 0.0)) if "h2tf" in stage["method"] else 0.0


def main() -> None:
    rows = json.loads((RESULTS / "results.json").read_text())["runs"]
    ratios = sorted({ratio_of(r) for r in rows})
    metrics = ("overall", "head", "tail", "tail3")
    series = {m: [float(np.mean([r["metrics"][m] for r in rows if ratio_of(r) == p])) for p in ratios] for m in metrics}
    seeds = sorted({r["seed"] for r in rows})
    out = plot_sweep(ratios, series, RESULTS / "h2tf_ratio.png", "H2TF fusion ratio ρ (0 = cRT)",
                     title=f"H2TF ratio sweep, Fashion-MNIST-LT IF 100, seeds {seeds}")
    print(out)
    for p, *vals in zip(ratios, *series.values()):
        print(f"rho {p:.2f}: " + ", ".join(f"{m} {v:.2f}" for m, v in zip(metrics, vals)))


if __name__ == "__main__":
    main()
