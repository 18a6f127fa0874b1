"""``longtail recommend``: which long-tail method to use on *your* data, decided on it.

It trains a short list of the methods that came out ahead in our studies (docs/results/README.md) on
the data of a run config, every one with the config's own network, stage-1 schedule and seed,
and picks the one with the best **balanced accuracy on a validation split carved from the
training images** (a stratified share of each class; the test set is never used to choose):

- ``crt``: CE, then a new classifier on class-balanced batches (Kang et al., ICLR 2020);
- ``logit_adjust``: CE, then post-hoc logit adjustment ``argmax(z − log π)`` (Menon et al., ICLR 2021);
- ``balanced_softmax``: CE on ``z + log π`` (Ren et al., NeurIPS 2020);
- ``ldam_drw``: LDAM margins on a cosine head, class-balanced re-weighting for the last 20 %;
- ``dr_h2t``: CE + mixup, then H2T's classifier stage with head-to-tail fusion (Li et al., AAAI 2024).

cRT and logit adjustment share one CE stage 1. ``--budget MINUTES`` times a few CE steps first and
gives every stage 1 the same number of epochs (at most the config's) so that all of them fit;
the comparison stays fair. Results: ``OUT/recommend.md`` (the table), ``OUT/recommend.json``,
``OUT/per_class_val.png``, and each candidate's run folder ``OUT/<method>/``, the winner's ready
for ``longtail predict`` / ``export``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from longtail.config import RunConfig, StageConfig, to_dict
from longtail.errors import LongtailError

CANDIDATES = {
    "crt": "CE, then cRT (a new classifier on class-balanced batches)",
    "logit_adjust": "CE with post-hoc logit adjustment",
    "balanced_softmax": "Balanced Softmax",
    "ldam_drw": "LDAM-DRW (cosine head, re-weighting for the last 20 % of epochs)",
    "dr_h2t": "CE + mixup, then H2T's classifier stage (head-to-tail fusion, ratio 0.25)",
}
DEFAULT_VAL_FRACTION = 0.15
CLASSIFIER_EPOCHS = 10  # cRT / H2T's classifier stage (Kang et al.; H2T's configs)


@dataclass
class Candidate:
    method: str
    cfg: RunConfig
    base: str | None = None  # the candidate whose stage 1 this one starts from


def _stage1(cfg: RunConfig, epochs: int) -> StageConfig:
    st = copy.deepcopy(cfg.stages[0])
    return replace(st, name="stage1", epochs=epochs, method_args={}, train="", sampler="", reinit_head=None)


def _classifier_stage(first: StageConfig, method: str, **kw) -> StageConfig:
    """cRT with stage 1's optimiser on a cosine schedule (Kang et al.); H2T's classifier stage at
    its own lr 0.02 and wd 5e-4, the learning rate set once an epoch (train_stage2.py)."""
    h2t = method == "crt+h2tf"
    opt = replace(first.optimizer, lr=0.02, weight_decay=5e-4) if h2t else first.optimizer
    sch = replace(first.schedule, name="cosine", warmup_epochs=0.0, milestones=[], step="epoch" if h2t else "iteration")
    return StageConfig(method=method, name="stage2", epochs=CLASSIFIER_EPOCHS, batch_size=first.batch_size,
                       optimizer=opt, schedule=sch, **kw)


def candidates(cfg: RunConfig, epochs: int, methods: list[str]) -> list[Candidate]:
    """The runs of the comparison (shared stage 1s first), each a full run config."""
    s1 = _stage1(cfg, epochs)
    base = replace(cfg, start_stage=0, model=replace(cfg.model, init=""))
    out = {}
    ce = replace(base, stages=[s1])
    if "crt" in methods or "logit_adjust" in methods:
        out["ce"] = Candidate("ce", ce)
    if "crt" in methods:
        out["crt"] = Candidate("crt", replace(ce, stages=[s1, _classifier_stage(s1, "crt")]), "ce")
    if "logit_adjust" in methods:
        out["logit_adjust"] = Candidate("logit_adjust", replace(ce, stages=[
            s1, StageConfig(method="logit_adjust", name="posthoc", epochs=0, method_args={"posthoc": True, "tau": 1.0})]), "ce")
    if "balanced_softmax" in methods:
        out["balanced_softmax"] = Candidate("balanced_softmax", replace(base, stages=[replace(s1, method="balanced_softmax")]))
    if "ldam_drw" in methods:
        drw = max(1, math.floor(0.8 * epochs)) if epochs > 1 else 0
        out["ldam_drw"] = Candidate("ldam_drw", replace(base, model=replace(base.model, head="cosine"), stages=[
            replace(s1, method="ldam_drw", method_args={"drw_epoch": drw})]))
    if "dr_h2t" in methods:
        mixup = replace(s1, method="ce+mixup", method_args={"mixup": {"alpha": 1.0}})
        out["ce_mixup"] = Candidate("ce_mixup", replace(base, stages=[mixup]))
        out["dr_h2t"] = Candidate("dr_h2t", replace(base, stages=[mixup, _classifier_stage(
            s1, "crt+h2tf", method_args={"h2tf": {"ratio": 0.25}}, reinit_head=False, backbone_bn="train")]), "ce_mixup")
    return list(out.values())


def _with_validation(cfg: RunConfig, fraction: float, log) -> RunConfig:
    d = cfg.data
    if d.val_per_class or d.val_fraction or d.val_list:
        return cfg
    log(f"validation: {fraction:g} of each class's training images held out to choose the method (data.val_fraction); "
        "the test set only reports")
    return replace(cfg, data=replace(d, val_fraction=fraction))


def _epoch_seconds(cfg: RunConfig, out: Path) -> float:
    """A CE epoch of the config's stage 1 on the same data and network: a few of its steps timed
    (longtail.engine.cost); with engine.compile, where the first steps compile, one whole epoch."""
    from longtail.engine.cost import epoch_seconds
    from longtail.engine.trainer import Trainer

    probe = replace(cfg, stages=[_stage1(cfg, 1)], eval=replace(cfg.eval, plots=False),
                    engine=replace(cfg.engine, progress=False))
    trainer = Trainer(probe, out / "_timing", log=lambda m: None)
    seconds = epoch_seconds(trainer)
    if seconds is None:
        t = time.perf_counter()
        trainer.run()
        seconds = time.perf_counter() - t
    return seconds


def recommend(cfg: RunConfig, out: Path, methods: list[str] | None = None, budget_min: float = 0.0,
              val_fraction: float = DEFAULT_VAL_FRACTION, log=print) -> dict:
    from longtail.engine.runtime import cpu_threads, crowded_threads
    from longtail.engine.trainer import Trainer, check_run

    if cfg.stages[0].cache_features:  # a pretrained backbone's features: every head-level method, in seconds
        return recommend_on_features(cfg, out, methods, budget_min, val_fraction, log)
    methods = methods or list(CANDIDATES)
    unknown = [m for m in methods if m not in CANDIDATES]
    if unknown:
        raise LongtailError(f"recommend: unknown candidate(s) {unknown}", f"choose from {', '.join(CANDIDATES)}")
    check_run(cfg)
    cfg = _with_validation(cfg, val_fraction, log)
    crowded = crowded_threads(cpu_threads(cfg.engine))
    if crowded:  # before the budget's timing, which it would make pessimistic
        log(f"warning: {crowded[1]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = cfg.stages[0].epochs
    runs = candidates(cfg, epochs, methods)
    if budget_min:
        per_epoch = _epoch_seconds(cfg, out)
        trainings = sum(1 for r in runs if r.base is None)
        heads = sum(1 for r in runs if r.base is not None)
        # a classifier epoch runs the frozen backbone forward only: about a quarter of a full one
        fit = math.floor((60 * budget_min - 0.25 * heads * CLASSIFIER_EPOCHS * per_epoch) / (trainings * per_epoch))
        if fit < 1:
            raise LongtailError(f"recommend: --budget {budget_min:g} min does not fit one epoch of each of {trainings} "
                                f"stage-1 trainings ({per_epoch:.0f} s an epoch here)",
                                f"give at least {math.ceil((trainings + 0.25 * heads * CLASSIFIER_EPOCHS) * per_epoch / 60)} "
                                "minutes, or fewer --methods")
        if fit < epochs:
            log(f"budget {budget_min:g} min: {per_epoch:.1f} s an epoch here, so every stage 1 trains {fit} epochs "
                f"(the config says {epochs}), {trainings} stage 1s and {heads} classifier stages in all")
            epochs = fit
            runs = candidates(cfg, epochs, methods)
    rows = []
    for i, r in enumerate(runs):
        folder = out / r.method
        run_cfg = r.cfg
        if r.base is not None:
            run_cfg = replace(run_cfg, start_stage=1, model=replace(run_cfg.model, init=str(out / r.base)))
        log(f"[{i + 1}/{len(runs)}] {r.method}: {' -> '.join(s.method for s in run_cfg.stages[run_cfg.start_stage:])}")
        done = (folder / "metrics.json").is_file()
        if not done:
            Trainer(run_cfg, folder, resume=(folder / "checkpoint.pt").exists(), log=lambda m: None).run()
        if r.method not in CANDIDATES:
            continue
        m = json.loads((folder / "metrics.json").read_text())
        val = m["stages"][-1].get("val") or {}
        rows.append({"method": r.method, "what": CANDIDATES[r.method], "folder": str(folder),
                     "val_balanced": val.get("balanced"), "val_overall": val.get("overall"),
                     "val_per_class": val.get("per_class"), "test_balanced": m["balanced"], "test_overall": m["overall"],
                     "test_tail": m["tail"], "epochs": [s.epochs for s in run_cfg.stages],
                     "class_counts": m["class_counts"], "class_names": m["run"]["input"]["class_names"]})
    best = max(rows, key=lambda x: -1 if x["val_balanced"] is None else x["val_balanced"])
    result = {"best": best["method"], "best_folder": best["folder"], "epochs_stage1": epochs,
              "epochs_config": cfg.stages[0].epochs, "rows": rows,
              "config": to_dict(cfg), "date": time.strftime("%Y-%m-%d")}
    (out / "recommend.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "recommend.md").write_text(table(result) + "\n")
    _plot(rows, out / "per_class_val.png")
    return result


def table(result: dict) -> str:
    lines = ["| method | what | validation balanced | validation overall | test balanced | test overall | test tail |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in sorted(result["rows"], key=lambda x: -(x["val_balanced"] or -1)):
        mark = " **(chosen)**" if r["method"] == result["best"] else ""
        lines.append(f"| `{r['method']}`{mark} | {r['what']} | {r['val_balanced']:.2f} | {r['val_overall']:.2f} | "
                     f"{r['test_balanced']:.2f} | {r['test_overall']:.2f} | {r['test_tail']:.2f} |")
    lines.append(f"\nChosen by balanced accuracy on the validation images (held out of training); the test columns only "
                 "report." + _noise(result))
    if result.get("on_features"):
        f = result["final"]
        lines.append(f"Every candidate trained a head on the frozen backbone's features ({result['epochs_stage1']} epochs; "
                     f"two-stage ones a second stage after the CE head). The model to use, {result['best_folder']}, is "
                     f"`{result['best']}` trained again on all {f['train_images']:,} training images (the validation images "
                     f"included), stages {', '.join(f['stages'])}: test balanced {f['test_balanced']:.2f}, tail "
                     f"{f['test_tail']:.2f} (`longtail predict {result['best_folder']} IMAGES`, `longtail export "
                     f"{result['best_folder']}`).")
    else:
        cut = result.get("epochs_config", result["epochs_stage1"]) > result["epochs_stage1"]
        lines.append(f"Every stage 1 trained {result['epochs_stage1']} epochs"
                     + (f" of the config's {result['epochs_config']} (--budget)" if cut else "") + ". The chosen run, "
                     f"{result['best_folder']}, trained on the training images less the validation ones"
                     + (" and for the shortened schedule: it is the comparison's run, not a finished model; train the "
                        f"chosen method on the full schedule for that" if cut else "")
                     + f" (`longtail predict {result['best_folder']} IMAGES`, `longtail export {result['best_folder']}`).")
    return "\n".join(lines)


def _noise(result: dict) -> str:
    """How far one validation image moves the choice: one image of the class with the fewest
    validation images (from the chosen run's split.csv, an image folder's), in balanced points."""
    import csv
    from collections import Counter

    split = Path(result["rows"][0]["folder"]) / "split.csv"
    if not split.is_file():
        return ""
    counts = Counter(r["class"] for r in csv.DictReader(open(split)) if r["split"] == "val")
    if not counts:
        return ""
    name, n = min(counts.items(), key=lambda kv: kv[1])
    return (f" One validation image of the class with the fewest ({name}: {n}) moves balanced accuracy by "
            f"{100 / (n * len(counts)):.1f} points: candidates closer than that are level, whatever their order.")


def _plot(rows: list[dict], path: Path) -> None:
    from longtail.evaluation.plots import plot_per_class

    series = {r["method"]: r["val_per_class"] for r in rows if r["val_per_class"]}
    if series:
        plot_per_class(series, rows[0]["class_counts"], path, title="validation accuracy per class",
                       class_names=rows[0]["class_names"], ylabel="validation accuracy (%)")


# ------------------------------------------------------------------ on cached features
# name: (what, stage-1 method, its args, head, a second stage (method, epochs, args) or None).
# Every one trains on the frozen backbone's features, computed once for all of them: a few
# settings of each method where it has one that matters (tau, beta, gamma).
HEAD_CANDIDATES = {
    "ce": ("cross-entropy", "ce", {}, "linear", None),
    # at tau 1 the logit-adjusted loss is Balanced Softmax (log pi and log n_c differ by a constant)
    **{f"logit_adjust_t{t:g}": (f"logit-adjusted loss, tau {t:g}" + (" (= Balanced Softmax)" if t == 1 else ""),
                                "logit_adjust", {"tau": t}, "linear", None) for t in (0.5, 1.0, 1.5)},
    **{f"posthoc_t{t:g}": (f"CE, then post-hoc logit adjustment, tau {t:g}", "ce", {}, "linear",
                           ("logit_adjust", 0, {"posthoc": True, "tau": t})) for t in (0.5, 1.0, 1.5)},
    **{f"cb_reweight_b{b:g}": (f"class-balanced re-weighting, beta {b:g}", "cb_reweight", {"beta": b}, "linear", None)
       for b in (0.99, 0.999, 0.9999)},
    **{f"focal_g{g:g}": (f"focal loss, gamma {g:g}", "focal", {"gamma": g}, "linear", None) for g in (1.0, 2.0)},
    "ldam_drw": ("LDAM-DRW (cosine head, re-weighting for the last 20 % of epochs)", "ldam_drw", {}, "cosine", None),
    "cb_resample": ("class-balanced re-sampling", "cb_resample", {}, "linear", None),
    "sqrt_resample": ("square-root re-sampling", "sqrt_resample", {}, "linear", None),
    "crt": ("CE, then cRT (a new head on class-balanced batches)", "ce", {}, "linear", ("crt", CLASSIFIER_EPOCHS, {})),
    "lws": ("CE, then learnable weight scaling", "ce", {}, "linear", ("lws", CLASSIFIER_EPOCHS, {})),
    "tau_norm": ("CE, then tau-normalisation (tau chosen on the validation images)", "ce", {}, "linear", ("tau_norm", 0, {})),
    "mislas_cls": ("CE, then MiSLAS's classifier stage (label-aware smoothing, weight scaling)", "ce", {}, "linear",
                   ("mislas", CLASSIFIER_EPOCHS, {})),
}


def head_candidates(cfg: RunConfig, methods: list[str]) -> list[Candidate]:
    """The runs of a comparison on cached features: the config's first stage (its schedule and
    optimiser) with each method; the CE head shared by the two-stage ones."""
    first = cfg.stages[0]
    base = replace(cfg, start_stage=0, model=replace(cfg.model, init=""))
    out = {}
    for name in methods:
        what, method, args, head, second = HEAD_CANDIDATES[name]
        if method == "ldam_drw":
            args = {"drw_epoch": max(0, math.floor(0.8 * first.epochs))}
        st1 = replace(first, name="stage1", method=method, method_args=dict(args), sampler="", reinit_head=None, train="head")
        run = replace(base, model=replace(base.model, head=head), stages=[st1])
        if second is None:
            out[name] = Candidate(name, run)
            continue
        if "ce" not in out:
            out["ce"] = Candidate("ce", replace(base, stages=[replace(st1, method="ce", method_args={})]))
        m2, epochs, args2 = second
        st2 = replace(first, name="stage2", method=m2, epochs=epochs, method_args=dict(args2), sampler="", reinit_head=None,
                      train="head")
        out[name] = Candidate(name, replace(run, stages=[replace(st1, method="ce", method_args={}), st2]), "ce")
    return list(out.values())


def recommend_on_features(cfg: RunConfig, out: Path, methods: list[str] | None, budget_min: float, val_fraction: float,
                          log) -> dict:
    """Every head-level method (:data:`HEAD_CANDIDATES`) on the features of the config's frozen
    backbone (its first stage, ``cache_features``), computed once; ranked by balanced accuracy on
    validation images held out of training. The config's later stages (fine-tuning, as far as the
    budget allows) follow the winning head as one more candidate, kept where they raise its
    validation accuracy. The winner is then trained again on all the training images in
    ``OUT/final``: the model to predict with and export."""
    from longtail.engine.runtime import cpu_threads, crowded_threads
    from longtail.engine.trainer import Trainer, check_run

    methods = methods or list(HEAD_CANDIDATES)
    unknown = [m for m in methods if m not in HEAD_CANDIDATES]
    if unknown:
        raise LongtailError(f"recommend: unknown candidate(s) {unknown} on features", f"choose from {', '.join(HEAD_CANDIDATES)}")
    check_run(cfg)
    crowded = crowded_threads(cpu_threads(cfg.engine))
    if crowded:
        log(f"warning: {crowded[1]}")
    full = cfg
    if budget_min:
        from longtail.budget import plan

        # the comparison costs one feature pass and seconds of heads; the final run another pass of
        # the training images: the plan gets three quarters of the budget
        log(f"--budget {budget_min:g} min: three quarters ({0.75 * budget_min:g} min) for the comparison, planned below; "
            "the rest for training the chosen model again on every training image")
        full = plan(cfg, 0.75 * budget_min, log)
    held = _with_validation(full, val_fraction, log)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    runs = head_candidates(held, methods)
    t0 = time.perf_counter()
    splits = None  # every candidate reads the same images: decoded once, by the first

    def train(run_cfg, folder, log_to=lambda m: None):
        nonlocal splits
        if not (folder / "metrics.json").is_file():
            trainer = Trainer(run_cfg, folder, resume=(folder / "checkpoint.pt").exists(), splits=splits, log=log_to)
            splits = trainer.splits
            trainer.run()
        return json.loads((folder / "metrics.json").read_text())

    def row(name, what, folder, m, epochs):
        val = m["stages"][-1].get("val") or {}
        return {"method": name, "what": what, "folder": str(folder), "val_balanced": val.get("balanced"),
                "val_overall": val.get("overall"), "val_per_class": val.get("per_class"), "test_balanced": m["balanced"],
                "test_overall": m["overall"], "test_tail": m["tail"], "epochs": epochs,
                "class_counts": m["class_counts"], "class_names": m["run"]["input"]["class_names"]}

    for i, r in enumerate(runs):
        folder = out / r.method
        run_cfg = r.cfg if r.base is None else replace(r.cfg, start_stage=1, model=replace(r.cfg.model, init=str(out / r.base)))
        m = train(run_cfg, folder, log if i == 0 else (lambda m: None))
        if r.method in methods:  # (not a shared CE head nobody asked to compare)
            rows.append(row(r.method, HEAD_CANDIDATES[r.method][0], folder, m, [s.epochs for s in run_cfg.stages]))
    log(f"{len(rows)} candidates on the cached features in {time.perf_counter() - t0:.0f} s")
    best = max(rows, key=lambda x: -1 if x["val_balanced"] is None else x["val_balanced"])
    winner = next(r for r in runs if r.method == best["method"]).cfg
    # what a method chose on the validation images (tau-norm's tau) is kept for the final run,
    # which has none
    chosen = json.loads((Path(best["folder"]) / "metrics.json").read_text())["stages"][-1].get("chosen", {})
    if chosen:
        last = winner.stages[-1]
        winner = replace(winner, stages=winner.stages[:-1] + [replace(last, method_args={**last.method_args, **chosen})])
    later_stages = [s for s in full.stages[1:] if s.epochs]
    if later_stages:
        # the config's later stages (fine-tuning) are a candidate too: after the winning head, on
        # the same held-out split, kept only where they raise its validation accuracy
        name = f"{best['method']}+{'+'.join(s.name or s.method for s in later_stages)}"
        folder = out / name.replace("+", "_then_")
        cand = replace(winner, start_stage=len(winner.stages), stages=list(winner.stages) + later_stages,
                       model=replace(winner.model, init=best["folder"]))
        m = train(cand, folder)
        rows.append(row(name, f"{best['what']}, then " + ", ".join(f"{s.name or s.method} ({s.method}, {s.epochs} epochs, train "
                                                                   f"{s.train or 'all'})" for s in later_stages),
                        folder, m, [s.epochs for s in cand.stages]))
        if (rows[-1]["val_balanced"] or -1) > (best["val_balanced"] or -1):
            best = rows[-1]
            winner = replace(winner, stages=list(winner.stages) + later_stages)
        else:
            log(f"{name}: validation balanced {rows[-1]['val_balanced']:.2f} against {best['val_balanced']:.2f} without: "
                "the final model stops before the later stages")
    # trained again on every training image (the validation hold-out back in)
    final_cfg = replace(winner, data=full.data)
    final = out / "final"
    log(f"final: {best['method']} trained again on all the training images: {final}")
    splits = None  # another split (no validation hold-out)
    fm = train(final_cfg, final)
    result = {"best": best["method"], "best_folder": str(final), "chosen_on": best["folder"], "epochs_stage1": cfg.stages[0].epochs,
              "on_features": True, "final": {"stages": [s["stage"] for s in fm["stages"]], "test_balanced": fm["balanced"],
                                             "test_tail": fm["tail"], "train_images": fm["run"]["train_images"]},
              "rows": rows, "config": to_dict(cfg), "date": time.strftime("%Y-%m-%d")}
    (out / "recommend.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "recommend.md").write_text(table(result) + "\n")
    _plot(rows, out / "per_class_val.png")
    return result
