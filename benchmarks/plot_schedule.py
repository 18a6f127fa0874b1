"""The stage-1 length study on Fashion-MNIST-LT IF 100 as two plots: overall and tail accuracy
(mean over the suite's seeds) against the epochs of stage 1, one line per (stage 1, read-out)
pair, CE and BNS each read out by a linear probe, cRT and IP-DPP fine-tuning.

Reads benchmarks/results/fashion_mnist_lt_schedule/results.json (made by
``longtail bench benchmarks/suites/fashion_mnist_lt_schedule.yaml``) and writes
``schedule_overall.png`` and ``schedule_tail.png`` next to it, and prints the table.
Run: ``python benchmarks/plot_schedule.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from longtail.evaluation.plots import plot_sweep

RESULTS = Path(__file__).resolve().parent / "results" / "fashion_mnist_lt_schedule"
# method id without its "_e<epochs>" part -> (stage 1, read-out); the line's colour is the
# read-out, its dash the stage 1
READ_OUTS = {"": "", "probe": "linear probe", "crt": "cRT", "ipdpp": "IP-DPP",
             "ipdpp_ft50": "IP-DPP, 50 epochs", "random_ft50": "random under-sampling, 50 epochs"}
LINES = {"ce": ("CE", ""), "ce_probe": ("CE", "probe"), "crt": ("CE", "crt"), "ipdpp": ("CE", "ipdpp"),
         "ipdpp_ft50": ("CE", "ipdpp_ft50"), "random_ft50": ("CE", "random_ft50"),
         "bns": ("BNS", "probe"), "bns_crt": ("BNS", "crt"), "bns_ipdpp": ("BNS", "ipdpp"),
         "bns_ipdpp_ft50": ("BNS", "ipdpp_ft50"), "bns_random_ft50": ("BNS", "random_ft50")}


def family_and_epochs(row: dict) -> tuple[str, int]:
    """("ipdpp_ft50", 60) for a row of ``ipdpp_e60_ft50``; the epochs come from the run's own config."""
    return re.sub(r"_e\d+", "", row["method"]), int(row["config"]["stages"][0]["epochs"])


def main() -> None:
    rows = json.loads((RESULTS / "results.json").read_text())["runs"]
    keyed = [(family_and_epochs(r), r["metrics"]) for r in rows]
    epochs = sorted({e for (_, e), _ in keyed})
    seeds = sorted({r["seed"] for r in rows})
    for metric in ("overall", "tail"):
        series, styles = {}, []
        for fam, (stage1, read_out) in LINES.items():
            vals = [[m[metric] for key, m in keyed if key == (fam, e)] for e in epochs]
            if any(vals):  # a read-out made only after some lengths: a gap (NaN) at the others
                series[" → ".join(filter(None, (stage1, READ_OUTS[read_out])))] = [
                    float(np.mean(v)) if v else float("nan") for v in vals]
                styles.append({"color": f"C{list(READ_OUTS).index(read_out)}", "marker": "o" if stage1 == "CE" else "s",
                               "linestyle": "-" if stage1 == "CE" else "--"})
        out = plot_sweep(epochs, series, RESULTS / f"schedule_{metric}.png", "epochs of stage 1 (CE or BNS)",
                         ylabel=f"{metric} test accuracy (%)", logx=True, styles=styles,
                         title=f"Stage-1 length, Fashion-MNIST-LT IF 100, ResNet-8, seeds {seeds}")
        print(out)
        print(f"{metric:>40}: " + "  ".join(f"E={e:<4}" for e in epochs))
        for name, ys in series.items():
            print(f"{name:>40}: " + "  ".join(f"{y:6.2f}" for y in ys))


if __name__ == "__main__":
    main()
