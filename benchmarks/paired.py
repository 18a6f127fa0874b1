"""Paired differences between two methods of a bench results folder: for each imbalance factor
and seed, ``metric(method) − metric(baseline)`` on the same data, seed and stage-1 model where
they share one, with the mean and on how many seeds the method is higher. Seeds are the pairing unit
because two rows of one seed differ only by the method, so the difference is far less noisy
than the spread over seeds.

    python benchmarks/paired.py benchmarks/results/fashion_mnist_lt_pih2t_factorial ldam_drw_h2tf ldam_drw_cb
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def paired(rows: list[dict], method: str, baseline: str, metric: str) -> dict[float, dict[int, float]]:
    """{IF: {seed: metric(method) − metric(baseline)}} over the (IF, seed) pairs both have
    (rows without the metric are skipped)."""
    by = {(r["method"], float(r["imbalance_factor"]), r["seed"]): r["metrics"][metric] for r in rows if metric in r["metrics"]}
    out: dict[float, dict[int, float]] = {}
    for (m, imb, seed), v in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if m == method and (baseline, imb, seed) in by:
            out.setdefault(imb, {})[seed] = v - by[(baseline, imb, seed)]
    return out


def by_seed(rows: list[dict], method: str | None, metric: str, seeds=None) -> dict[int, float]:
    """{seed: metric} of ``method``'s rows (of ``seeds`` when given; {} for no method)."""
    return {r["seed"]: r["metrics"][metric] for r in rows
            if method and r["method"] == method and (seeds is None or r["seed"] in seeds)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="a bench results folder (holding results.json)")
    ap.add_argument("method")
    ap.add_argument("baseline")
    ap.add_argument("--metrics", default="overall,head,tail", help="comma-separated (default: overall,head,tail)")
    a = ap.parse_args(argv)
    rows = json.loads((a.results / "results.json").read_text())["runs"]
    known = {r["method"] for r in rows}
    for m in (a.method, a.baseline):
        if m not in known:
            raise SystemExit(f"error: no method '{m}' in {a.results / 'results.json'}; it has: {', '.join(sorted(known))}")
    metrics = a.metrics.split(",")
    if unknown := [m for m in metrics if any(m not in r["metrics"] for r in rows)]:
        raise SystemExit(f"error: metric(s) {', '.join(unknown)} not in every row; "
                         f"choose from: {', '.join(k for k in rows[0]['metrics'] if k != 'per_class')}")
    print(f"{a.method} − {a.baseline} ({a.results}), percentage points")
    for metric in metrics:
        for imb, d in paired(rows, a.method, a.baseline, metric).items():
            vals = list(d.values())
            print(f"  {metric:>8} IF {imb:g}: " + ", ".join(f"seed {s} {v:+.1f}" for s, v in d.items())
                  + f"; mean {sum(vals) / len(vals):+.2f}; higher for the method on {sum(v > 0 for v in vals)} of {len(vals)}")


if __name__ == "__main__":
    main()
