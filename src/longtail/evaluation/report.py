"""Run-level outputs beyond metrics.json: the plots and the console table."""

from __future__ import annotations

from pathlib import Path

from longtail.evaluation import plots

GROUPS = ("overall", "many", "medium", "few", "head", "tail", "tail3", "ece")


def write_run_plots(out: Path, stage_metrics: list[dict], class_names, class_counts, bins: int = 15) -> list[Path]:
    """``per_class.png`` (every stage on one figure), and for the final stage
    ``confusion.png`` and ``reliability.png``."""
    out = Path(out)
    final = stage_metrics[-1]["metrics"]
    series = {f"{e['stage']} ({e['method']})": e["metrics"]["per_class"] for e in stage_metrics}
    return [
        plots.plot_per_class(series, class_counts, out / "per_class.png", class_names=class_names),
        plots.plot_confusion(final["confusion_matrix"], out / "confusion.png", class_names, class_counts),
        plots.plot_reliability(final["reliability"], out / "reliability.png", final["ece"]),
    ]


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def stage_columns(metrics: dict, rows: list[dict]) -> list[str]:
    """The metric groups a run's stage table shows: balanced accuracy first where the test set is
    imbalanced (the headline), groups with no class dropped."""
    groups = GROUPS if metrics.get("test_balanced", True) else ("balanced",) + GROUPS
    return [g for g in groups if any(r.get(g) is not None for r in rows)]


def stage_table(metrics: dict) -> str:
    """A Markdown table of every stage of a run (rows) by metric group (columns), from the
    run's metrics.json; groups with no class (e.g. few-shot on a 10-class set) are dropped."""
    rows = metrics.get("stages") or [metrics]
    cols = stage_columns(metrics, rows)
    lines = ["| stage | method | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for r in rows:
        lines.append(f"| {r.get('stage', '')} | {r.get('method', '')} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    if not metrics.get("test_balanced", True):
        lines.append("\nThe test set is imbalanced: 'balanced' (the mean of per-class accuracies) is the headline; "
                     "'overall' counts images, so it rewards predicting the largest classes.")
    return "\n".join(lines)
