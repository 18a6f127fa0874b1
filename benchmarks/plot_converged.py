"""Figures of the converged suite: where every method lands between head and tail accuracy, and
its accuracy on each class.

``head_tail.png``: one point a method (IF 100, mean over seeds; bars: sample std), tail accuracy
(the five smallest classes) against head accuracy (the five largest). Head and tail split the
ten classes in halves, and the test set is balanced, so overall accuracy is their mean and
the dashed diagonals are lines of equal overall accuracy; a method that trades head for tail
moves along them, one that helps both moves up and right. ``per_class_heatmap.png``: method ×
class accuracy, classes by training count. Rows from ``ws_*`` (the whole training set: their
head classes have six times the data) get figures of their own, ``head_tail_whole_set.png``
and ``per_class_heatmap_whole_set.png``.

Reads benchmarks/results/fashion_mnist_lt_converged/results.json (made by ``longtail bench
benchmarks/suites/fashion_mnist_lt_converged.yaml --resume``; any subset of its rows) and
writes the figures next to it. Run: ``python benchmarks/plot_converged.py [RESULTS_DIR]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from longtail.bench import per_class_means
from longtail.evaluation import plots
from longtail.evaluation.html import DATASET_CLASSES

RESULTS = Path(__file__).resolve().parent / "results" / "fashion_mnist_lt_converged"


def family(method: str) -> str:
    """The colour group of a row: what its stage 1 is."""
    method = method.removeprefix("ws_")
    if method.startswith("bns"):
        return "BNS stage 1"
    if "pif" in method or "pih2t" in method:
        return "PIF in stage 1"
    if method.startswith(("dr", "ce_mixup")):
        return "CE + mixup stage 1 (H2T's)"
    if method.startswith(("ldam_drw", "balanced_softmax")):
        return "LDAM-DRW / Balanced Softmax stage 1"
    return "CE stage 1"


def summary(rows: list[dict]) -> dict[str, dict[str, tuple[float, float, int]]]:
    """{method: {metric: (mean, std, seeds)}} for head, tail and overall."""
    out = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        vals = {k: np.array([r["metrics"][k] for r in rows if r["method"] == m], dtype=float) for k in ("head", "tail", "overall")}
        out[m] = {k: (v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0, len(v)) for k, v in vals.items()}
    return out


def _panel(ax, s: dict, colours: dict, xlim, ylim, label) -> None:
    for overall in range(50, 100, 5 if xlim[1] - xlim[0] > 30 else 1):  # head + tail = 2 x overall
        xs = np.array(xlim, dtype=float)
        ax.plot(xs, 2 * overall - xs, ls="--", lw=0.6, color="0.8", zorder=0)
        x_top = 2 * overall - ylim[1]
        if xlim[0] < x_top < xlim[1]:
            ax.text(x_top, ylim[1], f"{overall}", fontsize=7, color="0.5", ha="center", va="bottom")
    for m, v in s.items():
        c = colours[family(m)]
        ax.errorbar(v["tail"][0], v["head"][0], xerr=v["tail"][1], yerr=v["head"][1], fmt="o", ms=4, color=c, lw=0.7,
                    capsize=2, alpha=0.9)
        if label(v):
            ax.annotate(m + ("" if v["tail"][2] > 1 else " (1 seed)"), (v["tail"][0], v["head"][0]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points", color=c)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("tail accuracy (%): five smallest classes")
    ax.set_ylabel("head accuracy (%): five largest classes")


def plot_head_tail(s: dict, path: Path, title: str) -> Path:
    """Left: every method; right: the crowded corner (overall within 5 points of the best)
    enlarged, each point named."""
    plt = plots._plt()
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(15, 7), dpi=120, gridspec_kw={"width_ratios": [1, 1.4]})
    colours = dict(zip(dict.fromkeys(family(m) for m in s), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    cut = max(v["overall"][0] for v in s.values()) - 5
    top = [v for v in s.values() if v["overall"][0] >= cut]
    zx = (min(v["tail"][0] for v in top) - 1, max(v["tail"][0] for v in top) + 1)
    zy = (min(v["head"][0] for v in top) - 0.7, max(v["head"][0] for v in top) + 0.7)
    heads = [v["head"][0] for v in s.values()]
    full = (min(v["tail"][0] for v in s.values()) - 5, 100), (min(heads) - 3, min(100, max(92, max(heads) + 1.5)))
    _panel(ax, s, colours, *full, label=lambda v: v["overall"][0] < cut)
    ax.add_patch(plt.Rectangle((zx[0], zy[0]), zx[1] - zx[0], zy[1] - zy[0], fill=False, lw=0.8, ls=":", color="0.3"))
    ax.set_title("every method (dotted box: enlarged on the right)", fontsize=9)
    _panel(zoom, s, colours, zx, zy, label=lambda v: True)
    zoom.set_title(f"overall >= {cut:.1f} (dashed: equal overall accuracy, labelled at the top)", fontsize=9)
    for fam, c in colours.items():
        ax.plot([], [], "o", color=c, label=fam)
    ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def setup_title(rows: list[dict], seeds: list[int]) -> str:
    """What the rows share, read from their configs: data set, IF, network, class cap, seeds."""
    def one(get, what):
        vals = {get(r["config"]) for r in rows}
        return vals.pop() if len(vals) == 1 else f"mixed {what}"
    data = one(lambda c: (c["data"]["dataset"], c["data"]["imbalance_factor"], c["data"]["max_per_class"]), "data")
    arch = one(lambda c: c["model"]["arch"], "networks")
    where = (f"{data[0]} IF {data[1]:g}" + (f", at most {data[2]:,} images a class" if data[2] else "")
             if isinstance(data, tuple) else data)
    return f"{where}, {arch}, seeds {', '.join(map(str, seeds))}"


def figures(rows: list[dict], results: Path, suffix: str) -> None:
    """The scatter and the heatmap of one part of the suite (rows of one training set)."""
    seeds = sorted({r["seed"] for r in rows})
    s = summary(rows)
    print(f"{'method':<26}{'seeds':>6}{'overall':>9}{'head':>8}{'tail':>8}")
    for m, v in sorted(s.items(), key=lambda kv: -kv[1]["overall"][0]):
        print(f"{m:<26}{v['overall'][2]:>6}{v['overall'][0]:>9.2f}{v['head'][0]:>8.2f}{v['tail'][0]:>8.2f}")
    title = setup_title(rows, seeds)
    print(plot_head_tail(s, results / f"head_tail{suffix}.png", title))
    counts = rows[0]["class_counts"]
    names = DATASET_CLASSES.get(rows[0]["config"]["data"]["dataset"])
    by_overall = sorted(s, key=lambda m: -s[m]["overall"][0])
    means = per_class_means(rows)
    print(plots.plot_heatmap({m: means[m] for m in by_overall}, counts, results / f"per_class_heatmap{suffix}.png",
                             class_names=names if names and len(names) == len(counts) else None,
                             title=f"{title}: per-class accuracy (%), mean over seeds, best overall first"))


def main(results: Path = RESULTS) -> None:
    rows = [r for r in json.loads((results / "results.json").read_text())["runs"] if float(r["imbalance_factor"]) == 100.0]
    figures([r for r in rows if not r["method"].startswith("ws_")], results, "")
    whole = [r for r in rows if r["method"].startswith("ws_")]
    if whole:
        figures(whole, results, "_whole_set")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS)
