"""``longtail recommend``: which long-tail method to use on *your* data, decided on it.

It trains a short list of the methods that came out ahead in our studies (docs/results.md) on
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
    result = {"best": best["method"], "best_folder": best["folder"], "epochs_stage1": epochs, "rows": rows,
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
                 f"report. Every stage 1 trained {result['epochs_stage1']} epochs. The chosen run: {result['best_folder']} "
                 f"(`longtail predict {result['best_folder']} IMAGES`, `longtail export {result['best_folder']}`).")
    return "\n".join(lines)


def _plot(rows: list[dict], path: Path) -> None:
    from longtail.evaluation.plots import plot_per_class

    series = {r["method"]: r["val_per_class"] for r in rows if r["val_per_class"]}
    if series:
        plot_per_class(series, rows[0]["class_counts"], path, title="validation accuracy per class",
                       class_names=rows[0]["class_names"])
