"""Command line: ``longtail train | eval | info | prepare | bench | recommend | report | predict | export | fetch``.

Every user-facing failure is a :class:`LongtailError`: printed as ``error: ...`` with its fix,
exit status 2, no traceback (``LONGTAIL_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from longtail.errors import LongtailError


def _add_config_args(p: argparse.ArgumentParser, optional: bool = False):
    p.add_argument("config", nargs="?" if optional else None, help="run config (YAML), e.g. configs/demo.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set stages.0.epochs=5 (repeatable)")


def cmd_train(args) -> int:
    from longtail.config import load_config
    from longtail.engine.cost import announce
    from longtail.engine.trainer import Trainer
    from longtail.evaluation.report import stage_table

    resume_dir = args.resume if isinstance(args.resume, str) else None
    if resume_dir and args.out and Path(args.out) != Path(resume_dir):
        raise LongtailError(f"--resume {resume_dir} and --out {args.out} name two folders", "give the run folder once: --resume RUN")
    out_arg = resume_dir or args.out
    if args.resume and not out_arg:
        raise LongtailError("--resume needs the run folder", "write longtail train --resume RUN (or CONFIG --out RUN --resume)")
    if args.resume and not Path(out_arg).is_dir():
        raise LongtailError(f"--resume: {out_arg} does not exist", "pass the folder of a run started by `longtail train`")
    config = args.config
    if config is None:
        if not args.resume:
            raise LongtailError("longtail train needs a config", "write e.g. longtail train configs/demo.yaml (or --resume RUN)")
        config = Path(out_arg) / "config.yaml"
        if not config.is_file():
            raise LongtailError(f"--resume: {out_arg} holds no config.yaml", "pass the folder of a run started by `longtail train`")
    cfg = load_config(config, args.overrides)
    out = Path(out_arg) if out_arg else Path("runs") / cfg.name / time.strftime("%Y%m%d-%H%M%S")
    splits = None
    if args.budget:
        cfg, splits = _fit_budget(cfg, args.budget, bool(args.resume))
    trainer = Trainer(cfg, out, resume=bool(args.resume), splits=splits)
    print(f"run folder: {out}")
    counts = ", ".join(f"{n} {c}" for n, c in zip(trainer.train_set.class_names, trainer.train_set.class_counts()))
    print(f"train: {len(trainer.train_set)} images ({counts}); test: {len(trainer.splits.test)}; device {trainer.device}")
    # a resumed run's own history.csv says what its epochs cost
    announce(trainer, timed=not args.resume)
    trainer.run()
    from longtail.engine.distributed import shutdown

    shutdown(trainer.dist)  # under torchrun: every rank leaves the process group together
    metrics = json.loads((out / "metrics.json").read_text())
    print()
    print(stage_table(metrics))
    print(f"\nrun folder: {out}  (metrics.json, history.csv, per_class.png, confusion.png, reliability.png)")
    return 0


def _fit_budget(cfg, minutes: float, resume: bool):
    """The config fitted to ``--budget`` (longtail.budget), and the data when it had to be read
    to count it (handed to the run, which then does not read it again)."""
    from longtail.budget import candidate_sizes, plan
    from longtail.data.datasets import build_splits
    from longtail.engine.trainer import check_run

    if resume:
        raise LongtailError("--budget plans a new run; a resumed run keeps its stored config", "leave out --budget with --resume")
    check_run(cfg)
    splits = None if candidate_sizes(cfg) else build_splits(cfg.data)  # the size stands: count the data read once
    return plan(cfg, minutes, splits=splits), splits


def cmd_eval(args) -> int:
    import torch

    from longtail.config import load_config
    from longtail.engine.trainer import Trainer, resolve_stage
    from longtail.evaluation.report import stage_table
    from longtail.methods import make_method, split_method

    run = Path(args.run_dir)
    for f in ("config.yaml", "model.pt"):
        if not (run / f).is_file():
            raise LongtailError(f"{run} has no {f}", "pass a finished run folder (made by `longtail train`)")
    bad = [o for o in args.overrides if not o.split("=", 1)[0].strip().startswith(("data.", "engine.", "eval."))]
    if bad:
        raise LongtailError(f"eval --set {bad[0]}: only data.*, engine.* and eval.* keys may change for an evaluation",
                            "the model, its stages and methods are the run's own")
    cfg = load_config(run / "config.yaml", args.overrides)
    trainer = Trainer(cfg, run)
    if (run / "metrics.json").is_file():
        # shot groups and post-hoc corrections follow the run's own training counts, whatever
        # data set it is evaluated on now
        counts = json.loads((run / "metrics.json").read_text()).get("class_counts")
        if counts and len(counts) != trainer.num_classes:
            raise LongtailError(f"the run has {len(counts)} classes, the data set evaluated on {trainer.num_classes}",
                                "evaluate on a data set with the run's classes")
        if counts:
            trainer.class_counts = torch.tensor(counts, dtype=torch.float32)
    model = trainer._build_model()
    state = torch.load(run / "model.pt", map_location=trainer.device, weights_only=True)
    model.load_state_dict(state)
    rs = resolve_stage(len(cfg.stages) - 1, cfg.stages[-1])
    # post-hoc corrections depend only on the method's arguments and the class counts
    base, base_args, _ = split_method(rs.cfg.method, rs.cfg.method_args)
    method = make_method(base, trainer._context(model, rs, 1), base_args)
    split = args.split
    if split == "val" and trainer.splits.val is None:
        raise LongtailError("this run has no validation split", "use --split test")
    m = trainer.evaluate(model, method, split)
    from longtail.evaluation.metrics import headline_line

    print(f"{split}: {headline_line(m)}")
    if (run / "metrics.json").is_file():
        print()
        print(stage_table(json.loads((run / "metrics.json").read_text())))
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in m.items() if k != "confusion_matrix"}, indent=1))
    return 0


def cmd_info(args) -> int:
    from longtail.config import load_config
    from longtail.data.datasets import build_splits
    from longtail.data.profiles import shot_split
    from longtail.engine.cost import announce
    from longtail.engine.trainer import Trainer, check_run

    cfg = load_config(args.config, args.overrides)
    check_run(cfg)
    s = build_splits(cfg.data)
    counts = s.train.class_counts()
    d = cfg.data
    from longtail.data.datasets import default_profile

    profile = d.profile or default_profile(d.dataset)
    shaped = f"profile {profile}, imbalance factor {d.imbalance_factor:g}" if profile != "none" else "the data as it is (profile none)"
    print(f"data set: {d.dataset} ({d.root or 'default root'}), {shaped}")
    names = s.train.class_names  # indices where the data set has no names (LabeledImages fills them)
    tests = s.test.class_counts()
    print(f"classes: {s.train.num_classes}; training images per class: "
          f"{', '.join(f'{n} {c}' for n, c in zip(names, counts))} ({sum(counts):,} images)")
    print(f"test images per class: {', '.join(f'{n} {c}' for n, c in zip(names, tests))}")
    if len({c for c in tests if c}) > 1:
        print("note: the test set is imbalanced: runs lead with balanced accuracy (the mean of per-class accuracies); "
              "plain accuracy would reward predicting the largest classes")

    nz = [c for c in counts if c > 0]
    print(f"actual imbalance: {max(nz)} / {min(nz)} = {max(nz) / min(nz):.1f}")
    split = shot_split(counts, d.many_threshold, d.few_threshold)
    for k, label in (("many", f"> {d.many_threshold}"), ("medium", f"{d.few_threshold}-{d.many_threshold}"),
                     ("few", f"< {d.few_threshold}")):
        listed = ", ".join(names[c] for c in split[k]) if len(split[k]) <= 20 else ""
        print(f"{k:>6} ({label}): {len(split[k])} classes{': ' + listed if listed else ''}")
    print(f"test: {len(s.test):,} images; validation: {len(s.val) if s.val is not None else 0:,} images")
    for note in s.notes:  # (a warning says so itself)
        print(note if note.startswith("warning:") else f"note: {note}")
    # the data already read; the trainer writes nothing (its folder is never created)
    announce(Trainer(cfg, Path("runs") / "_info", splits=s, log=lambda msg: None))
    if args.views:
        print(f"augmented views: {_preview_views(cfg, s.train, counts, Path(args.views))}")
    return 0


def _preview_views(cfg, train, counts, path: Path) -> Path:
    """The first training image of up to 8 classes and two draws of each stage's augmentation
    (seeded by the run's seed), as one PNG: a look at what the network will see."""
    import torch

    from longtail.data.augment import augment, center_crop
    from longtail.data.loader import BatchSource
    from longtail.engine.runtime import generator
    from longtail.evaluation.plots import plot_views

    classes = [c for c, n in enumerate(counts) if n > 0][:8]
    first = [int((train.labels == c).nonzero()[0]) for c in classes]
    x, _, _ = next(BatchSource(train, torch.device("cpu"), cfg.data.workers).batches(torch.tensor(first), len(first)))
    columns = {"image": center_crop(x, train.image_size)}
    for i, stage in enumerate(cfg.stages):
        aug = cfg.augment_for(stage)
        if aug is None:
            continue
        gen = generator(cfg.seed, "preview", i)
        name = stage.name or f"stage{i + 1}"
        what = f"simclr s={aug.strength:g}" if aug.policy == "simclr" else aug.policy
        for v in (1, 2):
            columns[f"{name} ({what})\nview {v}"] = augment(x, aug, gen, train.image_size)
    return plot_views(columns, path, row_labels=[train.class_names[c] for c in classes], title=f"{cfg.name}: training augmentation")


def cmd_fetch(args) -> int:
    from longtail.data.fetch import OFFICIAL_URL, ensure_fashion_mnist

    if args.dataset != "fashion_mnist":
        raise LongtailError(f"cannot fetch '{args.dataset}'", "only fashion_mnist is fetched; other data sets: download them yourself and set data.root")
    root = ensure_fashion_mnist(Path(args.root) if args.root else None, args.url or OFFICIAL_URL, use_apt=not args.no_apt)
    print(f"fashion_mnist: {root}")
    return 0


def cmd_prepare(args) -> int:
    from longtail.config import load_config
    from longtail.data.cache import CachedImages
    from longtail.data.datasets import build_splits

    cfg = load_config(args.config, args.overrides + ["data.cache=true", "data.in_memory=false"])
    splits = build_splits(cfg.data)  # prepares what is not yet prepared
    parts = [(name, part.images) for name, part in (("train", splits.train), ("test", splits.test), ("val", splits.val))
             if part is not None and isinstance(part.images, CachedImages)]
    if not parts:
        print(f"nothing to prepare: {cfg.data.dataset} is read into memory as it is")
        return 0
    for name, images in parts:
        if args.check:
            images.check()
        m = images.manifest
        mib = m["count"] * m["channels"] * m["size"] ** 2 / 2**20
        print(f"{name}: {len(images)} of {m['count']} prepared images at {m['size']} x {m['size']} x {m['channels']}, "
              f"{mib:.0f} MiB in {images.folder}{' (checksums verified)' if args.check else ''}")
    return 0


def cmd_recommend(args) -> int:
    from longtail.config import load_config
    from longtail.recommend import recommend, table

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out or Path("runs") / "recommend" / cfg.name)
    result = recommend(cfg, out, args.methods, args.budget, args.val_fraction)
    print()
    print(table(result))
    print(f"\ntables and plots: {out / 'recommend.md'}, {out / 'per_class_val.png'}")
    return 0


def _stop_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_bench(args) -> int:
    import signal

    from longtail.bench import run_suite

    # a grid stopped by `kill` (or a scheduler's SIGTERM), or by Ctrl-C when started in the
    # background (where SIGINT would be ignored), stops as Ctrl-C does: keep_bases saves the run
    # under way
    signal.signal(signal.SIGTERM, _stop_as_interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from longtail.bench import failed_runs, plan_suite

    if args.plan:
        plan_suite(Path(args.suite), args.runs, args.overrides, tier=args.tier)
        return 0
    if args.launcher == "sequential" and (args.jobs or 1) > 1:
        raise LongtailError(f"--jobs {args.jobs} runs several runs at once, which the sequential launcher does not",
                            "add --launcher local (or leave out --jobs)")
    if args.launcher != "slurm" and (args.slurm or args.wait):
        raise LongtailError(f"{'--slurm' if args.slurm else '--wait'} is for jobs on a cluster, which the {args.launcher} "
                            "launcher does not submit", "add --launcher slurm")
    jobs = (args.jobs or 2) if args.launcher == "local" else 1
    out = run_suite(Path(args.suite), args.runs, args.results, args.overrides, tier=args.tier, resume=args.resume,
                    retry_failed=args.retry_failed, jobs=jobs, launcher=args.launcher, slurm=args.slurm, wait=args.wait)
    # the exit status says how many runs failed (0: none; at most 100)
    return min(failed_runs(out), 100)


def cmd_report(args) -> int:
    from longtail.evaluation.html import write_report

    print(f"report: {write_report(Path(args.path))}")
    return 0


def cmd_predict(args) -> int:
    import csv

    from longtail.api import load

    model = load(args.run_dir)
    rows = model.predict(args.images, top_k=args.top_k, progress=True, skip_unreadable=args.skip_unreadable)
    out = Path(args.out)
    bad = [r for r in rows if r["class"] is None]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "class", "prob"] + [f"top{i + 1}{s}" for i in range(args.top_k) for s in ("", "_prob")]
                   + (["error"] if bad else []))
        for r in rows:
            if r["class"] is None:  # an unreadable file: its row says why
                w.writerow([r["path"], "", ""] + [""] * (2 * args.top_k) + [r["error"]])
                continue
            w.writerow([r["path"], r["class"], f"{r['prob']:.6f}"] + [x for c, p in r["top"] for x in (c, f"{p:.6f}")]
                       + [""] * (2 * (args.top_k - len(r["top"]))) + ([""] if bad else []))
    for r in rows[:5]:
        if r["class"] is not None:
            print(f"{r['path']}: {r['class']} ({100 * r['prob']:.1f}%)")
    if bad:
        print(f"warning: {len(bad)} unreadable image(s) skipped, each a row with its error: "
              + "; ".join(f"{r['path']} ({r['error']})" for r in bad[:5]) + (" ..." if len(bad) > 5 else ""))
    print(f"{len(rows) - len(bad)} predictions: {out}")
    return 0


def cmd_export(args) -> int:
    from longtail.api import load

    model = load(args.run_dir)
    path = model.export(args.out or Path(args.run_dir) / "export", args.format)
    files = sorted(p.name for p in path.parent.iterdir() if p.is_file())
    print(f"exported: {path}; ship every file of {path.parent}: {', '.join(files)}"
          + (" (model.onnx.data holds the weights: keep it beside model.onnx)" if "model.onnx.data" in files else ""))
    print(f"input: {model.preprocessing()} (normalisation is inside the model); class names in classes.json")
    if model.folded:
        print("note: the run's PIF layer is folded into its classifier: the exported model is the base architecture")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from longtail import __version__

    p = argparse.ArgumentParser(prog="longtail", description="Long-tailed visual recognition on one engine.")
    p.add_argument("--version", action="version", version=f"longtail {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a run described by a config")
    _add_config_args(t, optional=True)  # left out with --resume RUN: the run's own config.yaml
    t.add_argument("--out", help="run folder (default runs/<name>/<timestamp>)")
    t.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN",
                   help="continue a run from its last checkpoint: --resume RUN (its stored config), or CONFIG --out RUN --resume")
    t.add_argument("--budget", type=float, default=0.0, metavar="MINUTES",
                   help="fit the run to this many minutes: input size (pretrained backbones on image files), epochs "
                        "and which stages run, chosen from costs measured here; it says what it chose")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("eval", help="evaluate a finished run's model again")
    e.add_argument("run_dir")
    e.add_argument("--split", choices=["test", "val"], default="test")
    e.add_argument("--json", help="also write the metrics to this file")
    e.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="evaluate on other data: e.g. --set data.root=DIR (data.*, engine.*, eval.* keys only)")
    e.set_defaults(func=cmd_eval)
    i = sub.add_parser("info", help="class counts, imbalance and many/medium/few split of a config's data")
    _add_config_args(i)
    i.add_argument("--views", metavar="PNG", help="also save a few training images with two augmented views per stage")
    i.set_defaults(func=cmd_info)
    pp = sub.add_parser("prepare", help="decode a file-backed data set once into uint8 shards that training reads (data.cache)")
    _add_config_args(pp)
    pp.add_argument("--check", action="store_true", help="also re-hash the prepared shards against their checksums")
    pp.set_defaults(func=cmd_prepare)
    b = sub.add_parser("bench", help="run a benchmark suite: a grid of method x imbalance factor x seed runs")
    b.add_argument("suite", help="suite file, e.g. benchmarks/suites/fashion_mnist_lt.yaml")
    b.add_argument("--tier", help="which of the suite's tiers to run (default: the suite's 'tier')")
    b.add_argument("--resume", action="store_true",
                   help="continue a grid: skip finished runs, resume interrupted ones (without it, a grid that has begun is refused)")
    b.add_argument("--runs", help="folder for the runs (default runs/bench/<suite>)")
    b.add_argument("--results", help="folder for results (default benchmarks/results)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key in every run, e.g. --set stages.0.epochs=1")
    b.add_argument("--launcher", choices=("sequential", "local", "slurm"), default="sequential",
                   help="sequential: one run after another (default); local: --jobs runs at once on this machine, "
                        "each with its share of the CPU threads (and of the GPUs); slurm: a Slurm job a run through "
                        "submitit (needs longtail[cluster]), a reusing run's job after its base's")
    b.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="with --launcher slurm: a job setting over the suite's 'slurm:' keys (partition, account, qos, "
                        "constraint, time_min, mem_gb, cpus_per_task, gpus_per_node, setup, additional; cluster=local "
                        "runs the jobs as processes on this machine)")
    b.add_argument("--wait", action="store_true",
                   help="with --launcher slurm: follow the jobs until every one has ended and record each row as it "
                        "ends (without it: submit and return; a later --resume records the finished rows)")
    b.add_argument("--jobs", type=int, default=None, metavar="N", help="with --launcher local: runs at once (default 2)")
    b.add_argument("--plan", action="store_true",
                   help="print the runs, which runs reuse which, and the grid's cost on this machine (epochs timed here); train nothing")
    b.add_argument("--retry-failed", action="store_true",
                   help="with --resume: continue the runs that failed (from their last checkpoint) instead of leaving them")
    b.set_defaults(func=cmd_bench)
    rc = sub.add_parser("recommend", help="train the methods that did best in our studies on your data and pick one "
                        "by balanced accuracy on a validation split of the training images")
    _add_config_args(rc)
    rc.add_argument("--out", help="folder of the comparison's runs (default runs/recommend/<name>)")
    rc.add_argument("--budget", type=float, default=0.0, metavar="MINUTES",
                    help="fit every candidate in about this many minutes (stage-1 epochs lowered equally for all)")
    from longtail.recommend import CANDIDATES, DEFAULT_VAL_FRACTION

    rc.add_argument("--methods", nargs="+", help=f"candidates (default: {' '.join(CANDIDATES)})")
    rc.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                    help="share of each class's training images held out to choose")
    rc.set_defaults(func=cmd_recommend)
    r = sub.add_parser("report", help="a self-contained HTML page of a run folder or a suite results folder")
    r.add_argument("path", help="runs/... (with metrics.json) or benchmarks/results/<suite> (with results.json)")
    r.set_defaults(func=cmd_report)
    pr = sub.add_parser("predict", help="class predictions of a finished run for image files or folders, as CSV")
    pr.add_argument("run_dir")
    pr.add_argument("images", nargs="+", help="image files or folders of images")
    pr.add_argument("--out", default="predictions.csv")
    pr.add_argument("--top-k", type=int, default=1)
    pr.add_argument("--skip-unreadable", action="store_true",
                    help="predict the readable images and give each unreadable one a row with its error (else: every one named, nothing predicted)")
    pr.set_defaults(func=cmd_predict)
    x = sub.add_parser("export", help="a standalone model of a finished run (TorchScript, torch.export's .pt2, or ONNX with the onnx package)")
    x.add_argument("run_dir")
    x.add_argument("--format", choices=["torchscript", "pt2", "onnx"], default="torchscript",
                   help="pt2: torch.export (load with torch.export.load(path).module()); torchscript: for libtorch")
    x.add_argument("--out", help="folder (default RUN/export)")
    x.set_defaults(func=cmd_export)
    f = sub.add_parser("fetch", help="make sure a data set is on disk (Fashion-MNIST)")
    f.add_argument("dataset", choices=["fashion_mnist"])
    f.add_argument("--root", help="where to put the files if they must be downloaded")
    f.add_argument("--url", help="base URL to download from (default: the official one)")
    f.add_argument("--no-apt", action="store_true", help="do not try Debian's package")
    f.set_defaults(func=cmd_fetch)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except LongtailError as e:
        if os.environ.get("LONGTAIL_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
