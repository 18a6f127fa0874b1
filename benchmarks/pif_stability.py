"""The PIF stability suite's table: for each run of CE with the authors' PIF, whether it trained
or diverged (its overall accuracy, or the epoch it failed at), the layer's effective α / β / γ
(y = α x + β m + γ) at a few epochs, and its largest gradient norm, from the runs' history.csv.

    longtail bench benchmarks/suites/fashion_mnist_lt_pif_stability.yaml --resume
    python benchmarks/pif_stability.py        # prints the Markdown table of docs/results/pif_stability.md
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs/bench/fashion_mnist_lt_pif_stability"
RESULTS = ROOT / "benchmarks/results/fashion_mnist_lt_pif_stability/results.json"
EPOCHS = (1, 2, 5, 20, 100, 200)


def history(run: Path) -> list[dict]:
    f = run / "history.csv"
    return list(csv.DictReader(f.open())) if f.exists() else []


def table(runs: Path = RUNS, results: Path = RESULTS) -> str:
    rows = json.loads(results.read_text())["runs"] if results.exists() else []
    head = "| run | outcome | " + " | ".join(f"α / β / γ, epoch {e}" for e in EPOCHS) + " | largest gradient norm |"
    out = [head, "|" + "---|" * (len(EPOCHS) + 3)]
    for r in rows:
        if not r["method"].startswith("ce_pif"):
            continue
        lr = r["method"].split("_lr")[1] if "_lr" in r["method"] else "0.1"
        if r.get("failed"):
            outcome = f"diverged (epoch {r['failed'].get('epoch') or '?'})"
        else:
            outcome = f"{r['metrics']['overall']:.2f}"
        hist = history(runs / r["method"] / f"seed{r['seed']}")
        by = {int(h["epoch"]): h for h in hist if h.get("neck_alpha")}
        cells = [f"{float(by[e]['neck_alpha']):.2f} / {float(by[e]['neck_beta']):.2f} / {float(by[e]['neck_gamma']):.2f}"
                 if e in by else "—" for e in EPOCHS]
        grads = [(float(h["grad_norm"]), int(h["epoch"])) for h in hist if h.get("grad_norm")]
        big = f"{max(grads)[0]:.2f} (epoch {max(grads)[1]})" if grads else "—"
        out.append(f"| lr {lr}, seed {r['seed']} | {outcome} | " + " | ".join(cells) + f" | {big} |")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=RUNS, help="the suite's run folders")
    ap.add_argument("--results", type=Path, default=RESULTS, help="its results.json")
    a = ap.parse_args(argv)
    print(table(a.runs, a.results))


if __name__ == "__main__":
    main()
