"""PNG plots of a run: per-class accuracy against training count, the confusion matrix, the
reliability diagram, sweeps, and a preview of augmented training images."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _styles(n: int) -> list[dict]:
    """Line styles for ``n`` series that no two share: ten colours, then a new dash pattern and
    marker for each further ten (matplotlib's default cycle repeats its colours after ten)."""
    import matplotlib

    colours = matplotlib.colormaps["tab10"].colors
    dashes, markers = ["-", "--", ":", "-."], ["o", "s", "^", "D"]
    return [{"color": colours[i % 10], "linestyle": dashes[i // 10 % 4], "marker": markers[i // 10 % 4]}
            for i in range(n)]


def _legend(fig, ax, n: int):
    """Beside the axes once there are too many series to fit inside without hiding lines."""
    if n <= 8:
        ax.legend(fontsize=8)
        return
    ax.legend(fontsize=7, ncol=1 + n // 16, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.set_figwidth(fig.get_figwidth() + 1.6 * (1 + n // 16))


def plot_per_class(series: dict[str, list], class_counts, path: Path, title: str = "", class_names=None,
                   ylabel: str = "test accuracy (%)") -> Path:
    """Per-class accuracy (y) against training images of the class (x, log scale), one line
    per entry of ``series`` (e.g. each stage, or each method); with ``class_names``, up to 20
    classes of distinct sizes are named on the x axis."""
    plt = _plt()
    counts = np.asarray(class_counts)
    order = np.argsort(-counts, kind="stable")
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for (name, acc), style in zip(series.items(), _styles(len(series))):
        a = np.array([np.nan if v is None else v for v in acc], dtype=float)
        ax.plot(counts[order], a[order], ms=3, lw=1.2, label=name, **style)
    ax.set_xscale("log")
    ax.invert_xaxis()
    if class_names and len(counts) <= 20 and len(set(counts.tolist())) == len(counts):
        ax.set_xticks(counts[order], [f"{class_names[c]} ({counts[c]})" for c in order], rotation=90, fontsize=7)
        ax.minorticks_off()
    ax.set_xlabel("training images of the class (log scale, head → tail)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    _legend(fig, ax, len(series))
    ax.set_title(title or "per-class accuracy")
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_heatmap(rows: dict[str, list], class_counts, path, class_names=None, title: str = "") -> Path:
    """Method (rows) × class (columns, most training images first) accuracy, in %, each cell
    written when the grid is small enough to read."""
    plt = _plt()
    counts = np.asarray(class_counts)
    order = np.argsort(-counts, kind="stable")
    a = np.array([[np.nan if v is None else v for v in acc] for acc in rows.values()], dtype=float)[:, order]
    names = [class_names[c] if class_names else str(c) for c in order]
    fig, ax = plt.subplots(figsize=(min(3 + 0.55 * a.shape[1], 16), 1.2 + 0.35 * a.shape[0]), dpi=120)
    im = ax.imshow(a, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    if a.shape[1] <= 40:
        ax.set_xticks(range(a.shape[1]), [f"{n} ({counts[c]})" for n, c in zip(names, order)], rotation=90, fontsize=7)
    ax.set_yticks(range(a.shape[0]), list(rows), fontsize=7)
    if a.size <= 600:
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                if not np.isnan(a[i, j]):
                    ax.text(j, i, f"{a[i, j]:.0f}", ha="center", va="center", fontsize=6, color="white" if a[i, j] < 50 else "black")
    ax.set_xlabel("class (training images), head → tail")
    fig.colorbar(im, ax=ax, fraction=0.03, label="test accuracy (%)")
    ax.set_title(title or "per-class accuracy")
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_confusion(cm, path: Path, class_names=None, class_counts=None) -> Path:
    """Rows: true class, columns: predicted, each row in % of its class. With ``class_counts``
    (training images per class) the classes run head to tail, labelled with their counts."""
    plt = _plt()
    cm = np.asarray(cm, dtype=float)
    n = len(cm)
    order = np.argsort(-np.asarray(class_counts), kind="stable") if class_counts is not None else np.arange(n)
    cm = cm[np.ix_(order, order)]
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    names = [class_names[c] if class_names else str(c) for c in order]
    if class_counts is not None:
        names = [f"{name} ({class_counts[c]})" for name, c in zip(names, order)]
    fig, ax = plt.subplots(figsize=(min(2 + 0.45 * n, 14),) * 2, dpi=120)
    im = ax.imshow(100 * norm, cmap="Blues", vmin=0, vmax=100)
    if n <= 30:
        ax.set_xticks(range(n), names, rotation=90, fontsize=7)
        ax.set_yticks(range(n), names, fontsize=7)
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{100 * norm[i, j]:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true" + (" (training images, head → tail)" if class_counts is not None else ""))
    fig.colorbar(im, ax=ax, fraction=0.046, label="% of the true class")
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_reliability(reliability: dict, path: Path, ece: float | None = None) -> Path:
    """Bars: accuracy per confidence bin (from :func:`metrics.reliability_bins`); the
    diagonal is perfect calibration."""
    plt = _plt()
    acc = np.array([np.nan if a is None else a for a in reliability["accuracy"]], dtype=float)
    bins = len(acc)
    centers = (np.arange(bins) + 0.5) / bins
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.bar(centers, np.nan_to_num(acc), width=1 / bins, edgecolor="k", alpha=0.8, label="accuracy")
    ax.plot([0, 1], [0, 1], "r--", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability" + (f" (ECE {ece:.2f}%)" if ece is not None else ""))
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_against_if(rows: list[dict], path, metric: str = "overall") -> Path:
    """Mean ``metric`` over seeds against the imbalance factor (log scale), a line per method,
    from results.json rows."""
    plt = _plt()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for m, style in zip(methods, _styles(len(methods))):
        ifs = sorted({r["imbalance_factor"] for r in rows if r["method"] == m})
        ys = [np.mean([r["metrics"][metric] for r in rows if r["method"] == m and r["imbalance_factor"] == f]) for f in ifs]
        ax.plot(ifs, ys, ms=3, lw=1.2, label=m, **style)
    ax.set_xscale("log")
    ax.set_xlabel("imbalance factor (log scale)")
    ax.set_ylabel(f"{metric} accuracy (%)")
    measured = sorted({r["imbalance_factor"] for r in rows})
    ax.set_xticks(measured, [f"{f:g}" for f in measured])  # the measured IFs, not powers of ten
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    _legend(fig, ax, len(methods))
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_sweep(xs: list[float], series: dict[str, list[float]], path, xlabel: str, ylabel: str = "test accuracy (%)",
               title: str = "", logx: bool = False, styles: list[dict] | None = None) -> Path:
    """One line per entry of ``series`` against a swept hyper-parameter (e.g. H2TF's ratio);
    ``logx`` for a geometric sweep (training lengths), ticks at the swept values; ``styles``
    (matplotlib line keywords, one per series) where colour and dash should carry meaning."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for (name, ys), style in zip(series.items(), styles or _styles(len(series))):
        ax.plot(xs, ys, ms=3, label=name, **style)
    if logx:
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    _legend(fig, ax, len(series))
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_views(columns: dict[str, "torch.Tensor"], path, row_labels=None, title: str = "") -> Path:
    """A grid of images: one row per image, one column per entry of ``columns`` (a name -> a
    B x C x H x W batch, uint8 or float in [0, 1]), e.g. the originals and their augmented views."""
    plt = _plt()
    names = list(columns)
    b = len(columns[names[0]])
    fig, axes = plt.subplots(b, len(names), figsize=(1.3 * len(names), 1.3 * b + 0.4), squeeze=False)
    for j, name in enumerate(names):
        batch = columns[name]
        batch = batch.float() / 255.0 if not batch.is_floating_point() else batch.float()
        for i in range(b):
            img = batch[i].clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            ax = axes[i][j]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=7)
            if j == 0 and row_labels is not None:
                ax.set_ylabel(str(row_labels[i]), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
