"""Pretrained features against training from scratch, method by method: the rows of
``fashion_mnist_lt_pretrained`` (EfficientNet-Lite0's frozen ImageNet features + each head
method; Lite0 fine-tuned) beside the converged suite's 200-epoch ResNet-8 rows of the same
data (Fashion-MNIST-LT IF 100, quick-tier data, the same seeds), with wall times.

    python benchmarks/compare_pretrained.py [--plot benchmarks/results/fashion_mnist_lt_pretrained/vs_scratch.png]

Prints a markdown table: each method's balanced accuracy (the test set is balanced, so it is
the overall accuracy) and tail accuracy as mean ± sample std over seeds, the per-seed
difference pretrained − scratch (same seed, same training images) with its verdict by the paired
rule (docs/results/verdict_rule.md), and the mean wall time of a run (a reusing
row's time is its own stages only, e.g. cRT's classifier stage; the pretrained rows' one feature
pass is not in them: docs/results/pretrained.md gives it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from verdicts import decide_paired  # noqa: E402  (the paired rule of docs/results/verdict_rule.md)
PRETRAINED = ROOT / "benchmarks/results/fashion_mnist_lt_pretrained/results.json"
SCRATCH = ROOT / "benchmarks/results/fashion_mnist_lt_converged/results.json"
# pretrained row -> the converged suite's row of the same method ("" for none)
PAIRS = [("ce", "ce"), ("logit_adjust_posthoc", "logit_adjust"), ("logit_adjust", ""), ("balanced_softmax", "balanced_softmax"),
         ("cb_reweight", "cb_reweight"), ("focal", "focal"), ("cb_resample", "cb_resample"), ("sqrt_resample", "sqrt_resample"),
         ("ldam_drw", "ldam_drw"), ("crt", "crt"), ("lws", "lws"), ("tau_norm", "tau_norm"), ("mislas_cls", ""),
         ("ft_last3", ""), ("ft_all", "")]


def rows_by(path: Path) -> dict:
    out = {}
    for r in json.loads(path.read_text())["runs"]:
        if float(r["imbalance_factor"]) == 100.0:
            out.setdefault(r["method"], {})[r["seed"]] = r
    return out


def ms(vals: list[float]) -> str:
    if not vals:
        return "—"
    return f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}" if len(vals) > 1 else f"{vals[0]:.2f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plot", type=Path, help="also draw the balanced accuracies as a bar chart here")
    a = ap.parse_args(argv)
    pre, scr = rows_by(PRETRAINED), rows_by(SCRATCH)
    print("| method | Lite0 features: balanced | tail | wall s | from scratch (ResNet-8, 200 epochs): balanced | tail | wall s "
          "| pretrained − scratch per seed | \"pretrained beats scratch\" |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    bars = []
    for p, s in PAIRS:
        if p not in pre:
            continue
        pr = pre[p]
        sr = scr.get(s, {}) if s else {}
        seeds = sorted(pr)
        cells = [ms([pr[k]["metrics"]["overall"] for k in seeds]), ms([pr[k]["metrics"]["tail"] for k in seeds]),
                 f"{statistics.mean(pr[k]['wall_s'] for k in seeds):.0f}"]
        if sr:
            both = [k for k in seeds if k in sr]
            diffs = [pr[k]["metrics"]["overall"] - sr[k]["metrics"]["overall"] for k in both]
            word, margin = decide_paired(diffs, ">")
            cells += [ms([sr[k]["metrics"]["overall"] for k in sorted(sr)]), ms([sr[k]["metrics"]["tail"] for k in sorted(sr)]),
                      f"{statistics.mean(sr[k]['wall_s'] for k in sr):.0f}", ", ".join(f"{d:+.1f}" for d in diffs),
                      f"{word} (mean {statistics.mean(diffs):+.2f}" + (f", margin {margin:.2f})" if margin is not None else ")")]
        else:
            cells += ["—", "—", "—", "—", "—"]
        name = f"`{p}`" + (f" / `{s}`" if s and s != p else "")
        print(f"| {name} | " + " | ".join(cells) + " |")
        bars.append((p, statistics.mean(pr[k]["metrics"]["overall"] for k in seeds),
                     statistics.mean(sr[k]["metrics"]["overall"] for k in sr) if sr else None))
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 3.6), dpi=120)
        xs = range(len(bars))
        ax.bar([x - 0.2 for x in xs], [b[1] for b in bars], 0.4, label="EfficientNet-Lite0 (ImageNet), frozen features / fine-tuned")
        ax.bar([x + 0.2 for x, b in zip(xs, bars) if b[2] is not None], [b[2] for b in bars if b[2] is not None], 0.4,
               label="ResNet-8 from scratch, 200 epochs")
        ax.set_xticks(list(xs), [b[0] for b in bars], rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("balanced accuracy (%), 3 seeds")
        ax.set_ylim(50, 100)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title("Fashion-MNIST-LT, IF 100, 2,478 training images")
        fig.tight_layout()
        fig.savefig(a.plot)
        print(f"\nplot: {a.plot}")


if __name__ == "__main__":
    main()
