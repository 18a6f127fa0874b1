"""PI-H2T as its authors wrote it: each base (DR, MiSLAS, GCL, RIDE) beside its "+ H2T", the
ratio-0 control of that fusion, and "+ PI-H2T" (the authors' PIF in stage 1, H2TF in the
classifier stage).

Left: overall accuracy, right: tail accuracy (the half of the classes with the fewest training
images); bars are means over seeds, dots the seeds. Reads
benchmarks/results/fashion_mnist_lt_pih2t_authors/results.json (made by ``longtail bench
benchmarks/suites/fashion_mnist_lt_pih2t_authors.yaml --resume``), writes ``bases.png`` next to
it and prints the table with the per-seed differences against each base.

    python benchmarks/plot_pih2t_authors.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from paired import by_seed

RESULTS = Path(__file__).resolve().parent / "results" / "fashion_mnist_lt_pih2t_authors"
# base -> (its row, + H2T, + H2T ratio 0, + PI-H2T, + PI-H2T ratio 0)
BASES = {
    "DR": ("dr", "dr_h2t", "dr_h2t_r0", "dr_pih2t", "dr_pih2t_r0"),
    "MiSLAS": ("mislas", "mislas_h2t", "mislas_h2t_r0", "mislas_pih2t", "mislas_pih2t_r0"),
    "GCL": ("gcl", "gcl_h2t", "gcl_h2t_r0", "gcl_pih2t", "gcl_pih2t_r0"),
    "RIDE": ("ride", "ride_h2t", "ride_h2t_r0", "ride_pih2t", "ride_pih2t_r0"),
}
ARMS = ["base", "+ H2T", "+ H2T, ratio 0", "+ PI-H2T", "+ PI-H2T, ratio 0"]
COLORS = ["0.6", "tab:blue", "lightsteelblue", "tab:red", "mistyrose"]


def table(rows: list[dict]) -> str:
    out = ["| base | arm | seeds | overall | tail | head | overall − base per seed | tail − base per seed |",
           "|---|---|---:|---:|---:|---:|---|---|"]
    for base, methods in BASES.items():
        ref = {k: by_seed(rows, methods[0], k) for k in ("overall", "tail")}
        for arm, m in zip(ARMS, methods):
            vals = {k: by_seed(rows, m, k) for k in ("overall", "tail", "head")}
            if not vals["overall"]:
                continue
            cells = [f"{statistics.mean(v.values()):.2f}" for v in vals.values()]
            diffs = []
            for k in ("overall", "tail"):
                d = [vals[k][s] - ref[k][s] for s in sorted(vals[k]) if s in ref[k]]
                diffs.append("—" if arm == "base" else ", ".join(f"{x:+.1f}" for x in d))
            out.append(f"| {base} | {arm} (`{m}`) | {len(vals['overall'])} | " + " | ".join(cells) + " | " + " | ".join(diffs) + " |")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    width = 0.16
    for ax, metric in zip(axes, ("overall", "tail")):
        lo = []
        for i, (base, methods) in enumerate(BASES.items()):
            for j, (arm, m, color) in enumerate(zip(ARMS, methods, COLORS)):
                v = by_seed(rows, m, metric)
                if not v:
                    continue
                x = i + (j - 2) * width
                ax.bar(x, statistics.mean(v.values()), width, color=color, edgecolor="black", linewidth=0.4,
                       label=arm if i == 0 else None)
                ax.scatter([x] * len(v), list(v.values()), s=8, color="black", zorder=3)
                lo.append(min(v.values()))
        ax.set_xticks(range(len(BASES)), list(BASES))
        ax.set_ylim(max(0, min(lo, default=0) - 5), None)
        ax.set_ylabel(f"{metric} accuracy (%)")
        ax.set_title(f"{metric} accuracy, Fashion-MNIST-LT IF 100")
        ax.grid(axis="y", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="upper center", ncol=5, bbox_to_anchor=(0.5, 0.93))
    fig.suptitle("H2T and PI-H2T (the authors' PIF) on four bases; dots: seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.88))
    fig.savefig(path, dpi=120)


def main() -> None:
    rows = [r for r in json.loads((RESULTS / "results.json").read_text())["runs"] if float(r["imbalance_factor"]) == 100]
    print(table(rows))
    plot(rows, RESULTS / "bases.png")
    print(f"figure: {RESULTS / 'bases.png'}")


if __name__ == "__main__":
    main()
