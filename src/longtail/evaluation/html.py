"""``longtail report``: one self-contained HTML page (tables, plots as inline PNG) for a run
folder (``metrics.json``) or a suite results folder (``results.json``)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from longtail.data.datasets import CIFAR10_CLASSES, FASHION_MNIST_CLASSES
from longtail.errors import LongtailError
from longtail.evaluation import plots
from longtail.evaluation.report import GROUPS, stage_columns

DATASET_CLASSES = {"fashion_mnist": FASHION_MNIST_CLASSES, "cifar10": CIFAR10_CLASSES}

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;padding:0 1em;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}.meta{color:#666;font-size:.9em}
table.setup th{text-align:left}table.setup td{text-align:left;white-space:normal}pre{background:#f7f7f7;padding:.6em;overflow:auto}
"""


def _png(fig_fn, *args, **kwargs) -> str:
    """Render a plot function that writes to a path into a data: URI."""
    buf = io.BytesIO()
    fig_fn(*args, buf, **kwargs)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


def _setup(items: list[tuple[str, object]]) -> str:
    """The header a reader needs first: what data, model and schedule produced the numbers."""
    return "<table class='setup'>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                                             for k, v in items if v not in (None, "")) + "</table>"


def _config_setup(cfg: dict) -> list[tuple[str, object]]:
    d, mo = cfg.get("data", {}), cfg.get("model", {})
    profile = d.get("profile") or "the data set's default"
    stages = "; ".join(f"{s.get('name') or i + 1}: {s.get('method')}, {s.get('epochs')} epochs, batch {s.get('batch_size')}, "
                       f"{(s.get('optimizer') or {}).get('name', 'sgd')} lr {(s.get('optimizer') or {}).get('lr')}"
                       for i, s in enumerate(cfg.get("stages", [])))
    return [("data", f"{d.get('dataset')} ({d.get('root') or 'default location'}), profile {profile}, "
                     f"imbalance factor {d.get('imbalance_factor')}"),
            ("model", f"{mo.get('arch')}, {mo.get('head')} head" + (", pretrained" if mo.get("pretrained") else "")),
            ("stages", stages)]


def run_report(run_dir: Path) -> str:
    import yaml

    m = json.loads((run_dir / "metrics.json").read_text())
    r = m.get("run", {})
    stages = m.get("stages") or [m]
    counts = m["class_counts"]
    names = (r.get("input") or {}).get("class_names") or [str(c) for c in range(len(counts))]
    cfg_text = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    cfg = yaml.safe_load(cfg_text) if cfg_text else {}
    parts = [_setup(_config_setup(cfg) + [("training images", r.get("train_images")), ("seed", r.get("seed")),
                                          ("machine", f"{r.get('machine')}, {r.get('precision', '')}, torch {r.get('torch')}"),
                                          ("date", r.get("date"))])]
    cols = stage_columns(m, stages)
    parts += ["<h2>Stages (test set)</h2>",
              _table(["stage", "method", *cols], [[s.get("stage"), s.get("method"), *(_fmt(s.get(c)) for c in cols)] for s in stages])]
    parts.append("<h2>Per-class accuracy</h2>")
    series = {f"{s.get('stage')} ({s.get('method')})": s["per_class"] for s in stages}
    parts.append(f"<img alt='per-class accuracy' src='{_png(plots.plot_per_class, series, counts, class_names=names)}'>")
    tests = m.get("test_counts") or [None] * len(counts)  # runs made before test counts were recorded: unknown
    parts.append(_table(["class", "training images", "test images", *series],
                        [[names[c], counts[c], "—" if tests[c] is None else tests[c], *(_fmt(v[c]) for v in series.values())]
                         for c in range(len(counts))]))
    few = [f"{names[c]} ({tests[c]})" for c in range(len(counts)) if tests[c] is not None and tests[c] < 5]
    if few:
        parts.append(f"<p>Fewer than 5 test images, so their accuracy moves in steps of 20 points or more: "
                     f"{html.escape(', '.join(few))}.</p>")
    parts.append("<h2>Confusion matrix and calibration (final stage)</h2>")
    parts.append(f"<img alt='confusion matrix' src='{_png(plots.plot_confusion, m['confusion_matrix'], class_names=names, class_counts=counts)}'>")
    parts.append(f"<img alt='reliability diagram' src='{_png(plots.plot_reliability, m['reliability'], ece=m['ece'])}'>")
    if cfg_text:
        parts.append(f"<h2>Config</h2><details><summary>config.yaml</summary><pre>{html.escape(cfg_text)}</pre></details>")
    return _page(f"longtail run: {r.get('name', run_dir.name)}", "".join(parts))


def suite_report(results_dir: Path) -> str:
    from longtail.bench import _groups, _mean_std, per_class_means
    from longtail.evaluation import published

    data = json.loads((results_dir / "results.json").read_text())
    rows = [r for r in data["runs"] if not r.get("failed")]  # failed runs are listed in results.md
    if not rows:
        raise LongtailError(f"{results_dir / 'results.json'} holds no runs", "run the suite first")
    r0 = rows[0]
    methods_all = list(dict.fromkeys(r["method"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    imbs = sorted({r["imbalance_factor"] for r in rows})
    d0 = (r0.get("config") or {}).get("data") or {}
    sizes = ", ".join(f"IF {i:g}: {sum(next(r for r in rows if r['imbalance_factor'] == i)['class_counts']):,}" for i in imbs)
    parts = [_setup([
        ("data", f"{r0['dataset']}, imbalance factor {', '.join(f'{i:g}' for i in imbs)}"),
        ("training images", sizes),
        ("shots", f"many > {d0.get('many_threshold', 100)}, few < {d0.get('few_threshold', 20)} training images"),
        *_config_setup(r0.get("config") or {})[1:2],
        ("tier", r0.get("tier")),
        ("methods", f"{len(methods_all)}: {', '.join(methods_all)}"), ("seeds", ", ".join(map(str, seeds))),
        ("runs", len(rows)), ("machine", f"{r0['machine']}, torch {r0['torch']}"),
        ("commit", ", ".join(sorted({str(r.get('commit'))[:7] for r in rows}))),
        ("dates", " .. ".join(dict.fromkeys((min(r["date"] for r in rows), max(r["date"] for r in rows)))))])]
    # the summary: one row a method, overall and tail accuracy at every imbalance factor
    summary = []
    for mth in methods_all:
        rs = [r for r in rows if r["method"] == mth]
        epochs = "+".join(str(e) for e in rs[0].get("epochs") or [])
        summary.append([mth, epochs, *(_mean_std([r["metrics"].get(k) for r in rs if r["imbalance_factor"] == i])
                                       for i in imbs for k in ("overall", "tail"))])
    parts += ["<h2>Summary</h2>", _table(["method", "epochs", *(f"IF {i:g} {k}" for i in imbs for k in ("overall", "tail"))], summary)]
    for ds, imb, sub in _groups(rows):
        methods = list(dict.fromkeys(r["method"] for r in sub))
        cols = [g for g in ("balanced",) + GROUPS if any(r["metrics"].get(g) is not None for r in sub)]
        parts.append(f"<h2>{html.escape(ds)}, imbalance factor {imb:g}</h2>")
        table_rows = []
        entries = published.load()
        joined = {mth: published.match([r for r in sub if r["method"] == mth], entries) for mth in methods}
        extra = any(joined.values())  # published and ours − published, where a row has a number
        for mth in methods:
            rs = [r for r in sub if r["method"] == mth]
            row = [mth, len(rs), *(_mean_std([r["metrics"].get(c) for r in rs]) for c in cols)]
            if extra:
                e, ours = joined[mth], [r["metrics"].get("overall") for r in rs if r["metrics"].get("overall") is not None]
                mean = sum(ours) / len(ours) if ours else None
                row += ([f"{e['top1']:.1f}", f"{mean - e['top1']:+.1f} ({published.reproduction(mean, e['top1'])})"]
                        if e and mean is not None else ["—", "—"])
            table_rows.append(row)
        parts.append(_table(["method", "seeds", *cols] + (["published", "ours − published"] if extra else []), table_rows))
        counts = sub[0]["class_counts"]
        means = per_class_means(sub)
        known = DATASET_CLASSES.get(((sub[0].get("config") or {}).get("data") or {}).get("dataset"), [])
        names = known if len(known) == len(counts) else None
        parts.append(f"<img alt='per-class accuracy by method' src='{_png(plots.plot_per_class, means, counts, title='per-class accuracy, mean over seeds', class_names=names)}'>")
        parts.append(f"<img alt='method by class accuracy' src='{_png(plots.plot_heatmap, means, counts, class_names=names, title='per-class accuracy (%), mean over seeds')}'>")
    imbs = sorted({r["imbalance_factor"] for r in rows})
    if len(imbs) > 1:
        parts.append("<h2>Accuracy against imbalance factor</h2>")
        parts.append(f"<img alt='accuracy against imbalance factor' src='{_png(plots.plot_against_if, rows)}'>")
    parts.append(f"<p class='meta'>Mean ± sample standard deviation over seeds. Regenerate with "
                 f"<code>{html.escape(r0['command'])}</code>. {html.escape(r0['machine'])}; torch {r0['torch']}.</p>")
    return _page(f"longtail suite: {data['suite']}", "".join(parts))


def write_report(path: Path) -> Path:
    path = Path(path)
    if (path / "metrics.json").is_file():
        text = run_report(path)
    elif (path / "results.json").is_file():
        text = suite_report(path)
    else:
        raise LongtailError(f"{path} holds neither metrics.json (a run) nor results.json (a suite)",
                            "pass a run folder or a benchmarks/results/<suite> folder")
    out = path / "report.html"
    out.write_text(text)
    return out
