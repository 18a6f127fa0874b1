"""BNS as released and BNS at three capacities: the figures and tables of
docs/results/bns_released.md and docs/results/bns_capacity.md.

capacity.png (from benchmarks/results/fashion_mnist_lt_bns_capacity/results.json): left, the cRT
read-out's overall accuracy of CE and BNS stage 1s against the network's parameter count (dots
the seeds, lines the means); right, BNS − CE per seed with a least-squares line in
log10(parameters), drawn on to the authors' ResNet-18 (11.2 M parameters). The line is a
three-point trend over a 6x range of sizes carried 24x beyond it: a direction, not a prediction.

released.png (from benchmarks/results/fashion_mnist_lt_bns_released/ and the converged suite's
whole-set rows): overall and tail accuracy of every read-out of BNS as released beside the same
read-outs of crop + flip BNS and of CE. Where the suite's 1,000-epoch rows (rel1000_*, seed 0)
have run, a table sets each read-out after 1,000 epochs beside the same after 200.

    python benchmarks/plot_bns_capacity.py
"""

from __future__ import annotations

import json
import math
import statistics
import textwrap
from pathlib import Path

from paired import by_seed, paired

RESULTS = Path(__file__).resolve().parent / "results"
# arch -> (parameters with a 1-channel stem and 10 classes, its row suffix)
SIZES = {"ResNet-8": (75_002, "r8"), "ResNet-20": (269_434, "r20"), "ResNet-32": (463_866, "r32")}
RESNET18 = 11_172_810  # resnet18_cifar, 1 channel, 10 classes
# read-out -> (CE's row, crop + flip BNS's row, released BNS's row)
READOUTS = {
    "authors' probe": (None, None, "rel_bns"),
    "linear probe (instance batches)": ("ws_ce_probe", "ws_bns", None),
    "cRT": ("ws_crt", "ws_bns_crt", "rel_bns_crt"),
    "IP-DPP, crop + flip": ("ws_ipdpp", "ws_bns_ipdpp", "rel_bns_ipdpp_cf"),
    "IP-DPP, SimCLR s = 1 (authors')": (None, None, "rel_bns_ipdpp"),
    "uniform, crop + flip": ("ws_random_us", "ws_bns_random", None),
    "uniform, SimCLR s = 1 (authors')": (None, None, "rel_bns_random"),
}


def rows_of(suite: str) -> list[dict]:
    path = RESULTS / suite / "results.json"
    return json.loads(path.read_text())["runs"] if path.exists() else []


def gaps(rows: list[dict], suffix: str, metric: str) -> dict[int, float]:
    """{seed: BNS − CE} through cRT at one size (the suite runs IF 100 only)."""
    return paired(rows, f"bns_crt_{suffix}", f"crt_{suffix}", metric).get(100.0, {})


def trend(rows: list[dict], metric: str) -> tuple[float, float] | None:
    """Least squares of BNS − CE (every seed a point) on log10(parameters): (slope, intercept)."""
    pts = [(math.log10(n), g) for n, suffix in SIZES.values() for g in gaps(rows, suffix, metric).values()]
    if len({x for x, _ in pts}) < 2:
        return None
    mx, my = statistics.mean(x for x, _ in pts), statistics.mean(y for _, y in pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return slope, my - slope * mx


def capacity_table(rows: list[dict]) -> str:
    out = ["| network | parameters | seeds | CE → cRT overall | BNS → cRT overall | BNS − CE per seed | "
           "CE → cRT tail | BNS → cRT tail | BNS − CE tail per seed | CE alone overall |",
           "|---|---:|---:|---:|---:|---|---:|---:|---|---:|"]
    for name, (n, suffix) in SIZES.items():
        g, gt = gaps(rows, suffix, "overall"), gaps(rows, suffix, "tail")
        if not g:
            continue
        cells = [statistics.mean(by_seed(rows, m, k).values()) for m, k in
                 ((f"crt_{suffix}", "overall"), (f"bns_crt_{suffix}", "overall"), (f"crt_{suffix}", "tail"),
                  (f"bns_crt_{suffix}", "tail"), (f"ce_{suffix}", "overall"))]
        out.append(f"| {name} | {n / 1e3:.0f} k | {len(g)} | {cells[0]:.2f} | {cells[1]:.2f} | "
                   + ", ".join(f"{x:+.1f}" for x in g.values()) + f" | {cells[2]:.2f} | {cells[3]:.2f} | "
                   + ", ".join(f"{x:+.1f}" for x in gt.values()) + f" | {cells[4]:.2f} |")
    for metric in ("overall", "tail"):
        t = trend(rows, metric)
        if t:
            at18 = t[0] * math.log10(RESNET18) + t[1]
            out.append(f"\n{metric}: BNS − CE = {t[0]:+.2f} x log10(parameters) {t[1]:+.2f}; carried to ResNet-18 "
                       f"({RESNET18 / 1e6:.1f} M): {at18:+.1f}; zero at {10 ** (-t[1] / t[0]) / 1e6:.3g} M parameters"
                       if t[0] > 0 else f"\n{metric}: BNS − CE = {t[0]:+.2f} x log10(parameters) {t[1]:+.2f}; carried "
                       f"to ResNet-18: {at18:+.1f} (the gap does not shrink with size)")
    return "\n".join(out)


def released_table(rel: list[dict], conv: list[dict]) -> str:
    """Means over the seeds BNS as released has (all of a row's seeds where it has none)."""
    seeds = {r["seed"] for r in rel}
    out = [f"seeds {sorted(seeds)}", "", "| read-out | CE | BNS, crop + flip | BNS as released | released − crop + flip per seed | "
           "released − CE per seed |", "|---|---:|---:|---:|---|---|"]
    for metric in ("overall", "tail"):
        for readout, (ce, cf, r) in READOUTS.items():
            v = [by_seed(conv, ce, metric, seeds), by_seed(conv, cf, metric, seeds), by_seed(rel, r, metric)]
            cells = [f"{statistics.mean(x.values()):.2f}" if x else "—" for x in v]
            d1 = ", ".join(f"{v[2][s] - v[1][s]:+.1f}" for s in sorted(v[2]) if s in v[1]) or "—"
            d2 = ", ".join(f"{v[2][s] - v[0][s]:+.1f}" for s in sorted(v[2]) if s in v[0]) or "—"
            out.append(f"| {readout} ({metric}) | " + " | ".join(cells) + f" | {d1} | {d2} |")
    ce = by_seed(conv, "ws_ce", "overall", seeds)
    out.append(f"\nCE alone (ws_ce): overall {statistics.mean(ce.values()):.2f}" if ce else "")
    return "\n".join(out)


def released_1000_table(rel: list[dict]) -> str:
    """The authors' 1,000 epochs (rel1000_*, seed 0) beside the same read-outs after 200."""
    out = ["| read-out | metric | 200 epochs (seed 0) | 1,000 epochs (seed 0) | 1,000 − 200 |", "|---|---|---:|---:|---:|"]
    for readout, (_, _, r) in READOUTS.items():
        if r is None:
            continue
        for metric in ("overall", "tail"):
            a = by_seed(rel, r, metric, {0})
            b = by_seed(rel, r.replace("rel_", "rel1000_"), metric, {0})
            if a and b:
                out.append(f"| {readout} | {metric} | {a[0]:.2f} | {b[0]:.2f} | {b[0] - a[0]:+.2f} |")
    return "\n".join(out) if len(out) > 2 else ""


def plot_capacity(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for arm, prefix, color in (("CE → cRT", "crt_", "tab:blue"), ("BNS → cRT", "bns_crt_", "tab:red")):
        xs, means = [], []
        for n, suffix in SIZES.values():
            v = by_seed(rows, prefix + suffix, "overall")
            if v:
                ax.scatter([n] * len(v), list(v.values()), color=color, s=14, alpha=0.6)
                xs.append(n)
                means.append(statistics.mean(v.values()))
        ax.plot(xs, means, "-o", color=color, label=arm)
    ax.set(xscale="log", xlabel="parameters", ylabel="overall accuracy (%)", title="cRT read-out by network size")
    ax.legend()
    for metric, color in (("overall", "tab:purple"), ("tail", "tab:orange")):
        for n, suffix in SIZES.values():
            g = gaps(rows, suffix, metric)
            bx.scatter([n] * len(g), list(g.values()), color=color, s=14)
        t = trend(rows, metric)
        if t:
            xs = [min(n for n, _ in SIZES.values()), RESNET18]
            bx.plot(xs, [t[0] * math.log10(x) + t[1] for x in xs], "--", color=color, label=f"{metric}: trend")
    bx.axhline(0, color="0.5", lw=0.8)
    bx.axvline(RESNET18, color="0.7", lw=0.8, ls=":")
    bx.text(RESNET18, bx.get_ylim()[0], " ResNet-18", rotation=90, va="bottom", fontsize=8, color="0.4")
    bx.set(xscale="log", xlabel="parameters", ylabel="BNS − CE (points)", title="BNS's gap to CE (cRT read-out), per seed")
    bx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_released(rel: list[dict], conv: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.4), sharey=True)
    arms = [("CE", 0, "0.6"), ("BNS, crop + flip", 1, "tab:blue"), ("BNS as released", 2, "tab:red")]
    seeds = {r["seed"] for r in rel}  # the seeds BNS as released has
    for ax, metric in zip(axes, ("overall", "tail")):
        for i, (readout, rows_) in enumerate(READOUTS.items()):
            for j, (label, k, color) in enumerate(arms):
                v = by_seed(rel if k == 2 else conv, rows_[k], metric, seeds)
                if not v:
                    continue
                x = i + (j - 1) * 0.27
                ax.bar(x, statistics.mean(v.values()), 0.25, color=color, label=label if i == 2 else None)
                ax.scatter([x] * len(v), list(v.values()), color="k", s=8, zorder=3)
        ax.set_xticks(range(len(READOUTS)), [textwrap.fill(r, 16) for r in READOUTS], fontsize=7)
        ax.set(title=f"{metric} accuracy, whole set (seeds {', '.join(map(str, sorted(seeds)))})", ylim=(0, 100))
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    cap = rows_of("fashion_mnist_lt_bns_capacity")
    if cap:
        plot_capacity(cap, RESULTS / "fashion_mnist_lt_bns_capacity" / "capacity.png")
        print(capacity_table(cap))
    rel, conv = rows_of("fashion_mnist_lt_bns_released"), rows_of("fashion_mnist_lt_converged")
    if rel:
        plot_released(rel, conv, RESULTS / "fashion_mnist_lt_bns_released" / "released.png")
        print(released_table(rel, conv))
        long = released_1000_table(rel)
        if long:
            print("\n" + long)


if __name__ == "__main__":
    main()
