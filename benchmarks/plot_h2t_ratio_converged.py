"""H2T's fusion-ratio sweep at the converged schedule, beside the published one.

Left: our DR -> H2T on Fashion-MNIST-LT IF 100 (mean over seeds, bars: min-max over seeds),
head / tail / overall accuracy against ρ (ρ 0 = DR). Right: H2T's own sweep on CIFAR-100-LT
IF 100 (DR, the authors' slides; ../shared/spec/PI_H2T.md): accuracy moves from head to tail
as ρ grows. Head and tail here are the halves of the classes by training count.

Reads benchmarks/results/fashion_mnist_lt_h2t_ratio_converged/results.json (made by
``longtail bench benchmarks/suites/fashion_mnist_lt_h2t_ratio_converged.yaml --resume``) and
writes ``h2t_ratio_vs_published.png`` next to it; prints the table and the per-seed changes
against ρ 0. Run: ``python benchmarks/plot_h2t_ratio_converged.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "fashion_mnist_lt_h2t_ratio_converged"

# H2T (AAAI 2024), DR on CIFAR-100-LT IF 100, p = 0, 0.1, ..., 1.0 (the authors' slides)
PUBLISHED_P = [round(0.1 * i, 1) for i in range(11)]
PUBLISHED = {
    "head": [63.8, 63.1, 61.9, 62.0, 59.6, 56.3, 53.9, 51.9, 49.4, 47.9, 44.3],
    "tail": [22.4, 25.4, 26.9, 27.1, 28.9, 30.8, 30.6, 33.2, 31.8, 32.7, 33.1],
    "overall": [45.7, 47.1, 47.6, 47.7, 47.6, 47.2, 46.5, 46.1, 45.5, 44.4, 43.6],
}
COLORS = {"head": "tab:blue", "tail": "tab:red", "overall": "black"}


def ratio_of(row: dict) -> float:
    stage = row["config"]["stages"][-1]
    return float(stage["method_args"].get("h2tf", {}).get("ratio", 0.0)) if "h2tf" in stage["method"] else 0.0


def sweep(rows: list[dict]) -> tuple[list[float], dict[str, np.ndarray]]:
    """ρ values and, per metric, a (ρ x seed) array (NaN where a run is missing)."""
    ratios = sorted({ratio_of(r) for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    out = {}
    for m in PUBLISHED:
        a = np.full((len(ratios), len(seeds)), np.nan)
        for r in rows:
            a[ratios.index(ratio_of(r)), seeds.index(r["seed"])] = r["metrics"][m]
        out[m] = a
    return ratios, out


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads((RESULTS / "results.json").read_text())["runs"]
    ratios, vals = sweep(rows)
    seeds = sorted({r["seed"] for r in rows})
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for m, a in vals.items():
        mean = np.nanmean(a, 1)
        lo, hi = np.nanmin(a, 1), np.nanmax(a, 1)
        ax.errorbar(ratios, mean, yerr=[mean - lo, hi - mean], color=COLORS[m], marker="o", capsize=3, label=m)
        bx.plot(PUBLISHED_P, PUBLISHED[m], color=COLORS[m], marker="s", label=m)
    ax.set_title(f"ours: DR -> H2T, Fashion-MNIST-LT IF 100\nResNet-8, 200-epoch stage 1, seeds {seeds}")
    bx.set_title("published: DR -> H2T, CIFAR-100-LT IF 100\n(H2T, AAAI 2024)")
    for a in (ax, bx):
        a.set_xlabel("fusion ratio ρ (0 = DR, no fusion)")
        a.set_ylabel("top-1 accuracy (%)")
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    out = RESULTS / "h2t_ratio_vs_published.png"
    fig.savefig(out, dpi=120)
    print(out)
    print("| ρ | n | overall | head | tail |\n|---:|---:|---:|---:|---:|")
    for i, p in enumerate(ratios):
        n = int(np.sum(~np.isnan(vals["overall"][i])))
        cells = " | ".join(f"{np.nanmean(vals[m][i]):.2f} ± {np.nanstd(vals[m][i], ddof=1) if n > 1 else 0:.2f}"
                           for m in ("overall", "head", "tail"))
        print(f"| {p:g} | {n} | {cells} |")
    if 0.0 in ratios:
        base = ratios.index(0.0)
        for i, p in enumerate(ratios):
            if i != base:
                d = {m: vals[m][i] - vals[m][base] for m in ("overall", "head", "tail")}
                print(f"ρ {p:g} - ρ 0, per seed: " + "; ".join(f"{m} {np.round(d[m], 2).tolist()}" for m in d))


if __name__ == "__main__":
    main()
