"""Benchmark suites: a grid of (method × imbalance factor × seed) runs on the engine, and its
results files.

A suite file names the method configs, the seeds, optionally the imbalance factors and tiers::

    suite: fashion_mnist_lt
    seeds: [0, 1, 2]
    imbalance_factors: [10, 50, 100]   # optional: overrides data.imbalance_factor, a folder each
    set: []                            # overrides applied to every run
    runs: runs/bench/<suite>           # the run folders (suites may share one: equal runs run once)
    tier: quick                        # the default tier
    tiers:                             # optional: named schedules
      quick: {set: [model.arch=resnet8]}
      full: {epochs: {stage1: 200, crt: 10}}   # stage name -> epochs; every stage must be named
    methods:
      ce: configs/fashion_mnist_lt/ce.yaml
      crt: {config: configs/fashion_mnist_lt/crt.yaml, reuse: ce}
      ldam_drw: {config: configs/fashion_mnist_lt/ldam_drw.yaml, tiers: {full: [stages.stage1.method_args.drw_epoch=160]}}
      bns_repr: {config: configs/fashion_mnist_lt/bns_repr.yaml, report: false}
      h2tf_p0.5: {config: configs/fashion_mnist_lt/ce_h2tf.yaml, reuse: ce, set: [stages.1.method_args.h2tf.ratio=0.5]}
      bns_e1000: {config: configs/fashion_mnist_lt/bns_repr.yaml, seeds: [0]}   # a row for some seeds only
      ws_ce: {config: configs/fashion_mnist_lt/ce.yaml, imbalance_factors: [100]}   # ... at some IFs only
    order: seed                        # optional: every method of a seed before the next seed
    keep_bases: true                   # optional: reused runs' weights kept in the results folder
    slurm: {partition: gpu, time_min: 600}   # optional: job settings for --launcher slurm

Overrides apply in this order: the tier's epochs, the suite's ``set``, the tier's ``set``,
``--set``, the method's ``set`` and its ``tiers`` entry (epoch-valued arguments such as
``drw_epoch`` go there). A suite-wide override that addresses a stage by name
(``stages.stage1.schedule.warmup_epochs=5``) applies to the configs that have such a stage; the
bench log names those it skips for a run, and its results row lists them (``unapplied_overrides``).
``reuse: ce`` runs only the stages after the first, starting from the ``ce`` run of the same
seed and IF (its stage 1 must be configured identically; this is checked), so every decoupled
method shares one stage-1 model; ``report: false`` keeps a run that exists only to be reused
out of the results. With ``resume`` (``--resume``), finished runs (``metrics.json`` in the run
folder, or a row of ``results.json`` with the same config) are skipped and interrupted ones
resumed, so a killed bench continues where it stopped; results are written after every run.

Outputs in ``benchmarks/results/<suite>/`` (``<suite>_<tier>/`` for a tier other than the
default): ``results.json`` (PROTOCOL.md schema), ``results.md`` (mean ± sample std over seeds, a
table per IF) and plots (per-class accuracy against class size, every method on one figure per
IF; overall and tail accuracy against IF), all made from the runs alone.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from longtail.config import RUN_FREE_KEYS, RunConfig, apply_overrides, from_dict, read_yaml, same_run, to_dict
from longtail.evaluation import published
from longtail.errors import LongtailError
from longtail.files import write_atomic

METRIC_KEYS = ("overall", "many", "medium", "few", "head", "tail", "tail3", "ece")
# an epoch of a head-only stage against one that trains the whole network, for the ETA (measured:
# ResNet-32 on Fashion-MNIST-LT, 13 s against 55 s on 2 CPU cores)
HEAD_EPOCH_COST = 0.25


# a grid's runs match their folders, kept bases and recorded rows whatever the torch threads
# (as `longtail train --resume` does): a grid under way can go on with --set engine.threads=1
# beside another, its float results differing from the other thread count's as they would
# from another CPU's
SAME_RUN_FREE = RUN_FREE_KEYS + ("engine.threads",)


@dataclass
class SuiteRun:
    method: str
    seed: int
    cfg: RunConfig
    run_dir: Path
    reuse: str | None
    report: bool = True
    imbalance: float | None = None  # the suite's IF axis (None: the config's own)
    # suite-wide overrides naming a stage this config does not have: they do not apply here
    unapplied: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple:
        """(method, imbalance factor, seed): what identifies a row of results.json."""
        return self.method, float(self.cfg.data.imbalance_factor), self.seed


def _read_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LongtailError(f"file not found: {path}", "check the path in the suite file")
    try:
        data = read_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise LongtailError(f"{path} is not valid YAML: {e}", "fix the syntax at the line shown "
                            "(quote a value holding ': ' or '[', e.g. \"stages.stage1.schedule.milestones=[160, 180]\")") from None
    if not isinstance(data, dict):
        raise LongtailError(f"{path} must hold a mapping", "write 'key: value' lines")
    return data


def _override_list(value, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LongtailError(f"{where} must be a list of 'key=value' strings", "write e.g. set: [stages.stage1.epochs=200]")
    return list(value)


def _tier_spec(suite: dict, path: Path, tier: str | None) -> tuple[str, str, dict]:
    """The chosen tier, the suite's default one, and the chosen tier's settings
    (``{set: [...], epochs: {stage name: epochs}}``)."""
    tiers = suite.get("tiers") or {}
    default = suite.get("tier") or (next(iter(tiers)) if tiers else "")
    tier = tier or default
    if tiers and tier not in tiers:
        raise LongtailError(f"suite {path} has no tier '{tier}'", f"choose one of {sorted(tiers)}")
    if not tiers and tier and suite.get("tier") and tier != suite["tier"]:
        raise LongtailError(f"suite {path} defines only the '{suite['tier']}' tier", "drop --tier, or add a 'tiers:' mapping")
    spec = dict(tiers.get(tier) or {})
    if set(spec) - {"set", "epochs", "description"}:
        raise LongtailError(f"suite {path}: tier '{tier}' has unknown keys {sorted(set(spec) - {'set', 'epochs', 'description'})}",
                            "a tier takes 'set' (overrides), 'epochs' (stage name -> epochs) and 'description'")
    return tier, default, spec


def _tier_epochs(data: dict, epochs: dict, mid: str, tier: str) -> list[str]:
    """Overrides giving every stage the tier's epochs for its name; a stage the tier does not
    name is an error, so no stage silently keeps another tier's schedule."""
    out = []
    for i, st in enumerate(data.get("stages") or [{}]):
        name = st.get("name", "")
        if name not in epochs:
            raise LongtailError(f"tier '{tier}' gives no epochs for stage '{name or i}' of method '{mid}'",
                                f"add '{name or '<name the stage>'}: N' to the tier's 'epochs' mapping")
        out.append(f"stages.{i}.epochs={int(epochs[name])}")
    return out


def _for_config(overrides: list[str], data: dict) -> list[str]:
    """The suite-wide overrides that apply to one config: one addressing a stage by name
    (``stages.stage1.epochs=...``) applies to the configs that have a stage of that name."""
    names = {st.get("name") for st in data.get("stages") or []}
    return [o for o in overrides if not _named_stage(o) or _named_stage(o) in names]


def _named_stage(override: str) -> str | None:
    parts = override.split("=", 1)[0].strip().split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "stages" and not parts[1].isdigit() else None


def load_suite(path: Path, runs_root: Path | None = None, extra_set: list[str] | None = None,
               tier: str | None = None) -> tuple[dict, list[SuiteRun]]:
    suite = _read_yaml(path)
    allowed = {"suite", "tier", "tiers", "seeds", "imbalance_factors", "set", "methods", "description", "runs", "order",
               "keep_bases", "slurm"}
    unknown = set(suite) - allowed
    if unknown:
        raise LongtailError(f"suite {path}: unknown key(s) {sorted(unknown)}", f"valid keys: {sorted(allowed)}")
    if not suite.get("methods"):
        raise LongtailError(f"suite {path} lists no methods", "add a 'methods:' mapping of id -> config")
    name = suite.get("suite") or Path(path).stem
    order = suite.get("order", "method")
    if order not in ("method", "seed"):
        raise LongtailError(f"suite {path}: order = {order!r} is not a grid order",
                            "write order: method (each method's seeds in turn, the default) or order: seed (every "
                            "method for the first seed, then every method for the next: whole seeds finish early)")
    keep_bases = suite.get("keep_bases", False)
    if not isinstance(keep_bases, bool):
        raise LongtailError(f"suite {path}: keep_bases = {keep_bases!r} must be true or false",
                            "write keep_bases: true to keep the weights of reused runs beside the results")
    seeds = suite.get("seeds", [0])
    tier, default_tier, tier_spec = _tier_spec(suite, path, tier)
    overrides = (_override_list(suite.get("set"), f"suite {path}: set")
                 + _override_list(tier_spec.get("set"), f"suite {path}: tier '{tier}' set") + list(extra_set or []))
    ifs = suite.get("imbalance_factors")
    if ifs is not None and (not isinstance(ifs, list) or not ifs
                            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 1 for x in ifs)):
        raise LongtailError(f"suite {path}: imbalance_factors = {ifs!r} must be a list of numbers >= 1",
                            "write e.g. imbalance_factors: [10, 50, 100]")
    runs_root = Path(runs_root or suite.get("runs") or Path("runs") / "bench" / name)
    if suite.get("tiers"):
        runs_root = runs_root / tier  # the tiers' runs differ, so they never share a folder
    specs = {}
    for mid, spec in suite["methods"].items():
        spec = {"config": spec} if isinstance(spec, str) else dict(spec)
        keys = {"config", "reuse", "report", "set", "tiers", "seeds", "imbalance_factors"}
        if set(spec) - keys:
            raise LongtailError(f"suite {path}: method '{mid}' has unknown keys {sorted(set(spec) - keys)}",
                                f"use {', '.join(sorted(keys))}")
        if set(spec.get("tiers") or {}) - set(suite.get("tiers") or {}):
            raise LongtailError(f"suite {path}: method '{mid}' has entries for unknown tier(s) "
                                f"{sorted(set(spec['tiers']) - set(suite.get('tiers') or {}))}",
                                f"the suite's tiers: {sorted(suite.get('tiers') or {})}")
        if "seeds" in spec and (not isinstance(spec["seeds"], list) or not set(spec["seeds"]) <= set(seeds)):
            raise LongtailError(f"suite {path}: method '{mid}' seeds = {spec['seeds']!r} must be a list drawn from the "
                                f"suite's seeds {seeds}", "write e.g. seeds: [0] (a costly row run for one seed)")
        if "imbalance_factors" in spec and (ifs is None or not isinstance(spec["imbalance_factors"], list)
                                            or not set(spec["imbalance_factors"]) <= set(ifs)):
            raise LongtailError(f"suite {path}: method '{mid}' imbalance_factors = {spec['imbalance_factors']!r} must be a "
                                f"list drawn from the suite's imbalance_factors {ifs}",
                                "write e.g. imbalance_factors: [100] (a costly row run at one IF)")
        if spec.get("reuse") and spec["reuse"] not in specs:
            raise LongtailError(f"suite {path}: '{mid}' reuses '{spec['reuse']}', which the suite does not run before it",
                                "list the reused method earlier in 'methods'")
        specs[mid] = spec
    configs = {mid: _read_yaml(Path(spec["config"])) for mid, spec in specs.items()}
    named = {st.get("name") for d in configs.values() for st in d.get("stages") or []}
    for o in overrides:
        if (stage := _named_stage(o)) and stage not in named:
            raise LongtailError(f"suite {path}: override '{o}' names stage '{stage}', which no method of the suite has",
                                f"stage names in this suite: {sorted(n for n in named if n)}")
    runs = []
    for imb in ifs or [None]:
        root = runs_root / f"if{imb:g}" if imb is not None else runs_root
        for mid, spec in specs.items():  # suite order: the order runs are made and rows are reported
            if imb is not None and imb not in spec.get("imbalance_factors", [imb]):
                continue
            base_data = configs[mid]
            method_set = (_override_list(spec.get("set"), f"suite {path}: {mid}.set")
                          + _override_list((spec.get("tiers") or {}).get(tier), f"suite {path}: {mid}.tiers.{tier}"))
            epochs = _tier_epochs(base_data, tier_spec["epochs"], mid, tier) if tier_spec.get("epochs") else []
            applied = _for_config(overrides, base_data)
            unapplied = [o for o in overrides if o not in applied]
            common = epochs + applied + method_set + ([f"data.imbalance_factor={imb}"] if imb is not None else [])
            for seed in spec.get("seeds", seeds):
                data = apply_overrides(copy.deepcopy(base_data), common + [f"seed={seed}"])
                run_dir = root / mid / f"seed{seed}"
                reuse = spec.get("reuse")
                if reuse:
                    base_cfg = next((r.cfg for r in runs if r.method == reuse and r.seed == seed and r.imbalance == imb), None)
                    if base_cfg is None:
                        at = f" at IF {imb:g}" if imb is not None else ""
                        raise LongtailError(f"suite {path}: '{mid}' seed {seed}{at} reuses '{reuse}', which does not run "
                                            f"seed {seed}{at}", f"give '{mid}' the seeds and imbalance_factors of '{reuse}'")
                    _check_reusable(mid, data, base_cfg)
                    data.setdefault("model", {})["init"] = str(root / reuse / f"seed{seed}")
                    data["start_stage"] = 1
                cfg = from_dict(RunConfig, data)
                runs.append(SuiteRun(mid, seed, cfg, run_dir, reuse, bool(spec.get("report", True)), imb, unapplied))
    command = " ".join([f"longtail bench {path}"] + ([f"--tier {tier}"] if suite.get("tiers") else [])
                       + [f"--set '{o}'" for o in extra_set or []])
    return {"suite": name, "tier": tier, "seeds": seeds, "path": str(path), "command": command,
            "default_tier": tier == default_tier, "order": order, "keep_bases": keep_bases, "runs_root": runs_root,
            "slurm": suite.get("slurm") or {},
            "description": suite.get("description", ""),
            "tier_description": tier_spec.get("description", "")}, runs


def _check_reusable(mid: str, data: dict, base: RunConfig):
    cfg = from_dict(RunConfig, copy.deepcopy(data))
    same = (_training_data(cfg.data) == _training_data(base.data) and cfg.model == base.model and cfg.augment == base.augment
            and len(base.stages) == 1 and cfg.stages[0] == base.stages[0])
    if not same:
        raise LongtailError(f"'{mid}' cannot reuse the stage-1 run: its data/model/augment/stage 1 differ from the base",
                            "make stage 1 of both configs identical, or drop 'reuse'")


def _training_data(d):
    """The data section as far as it decides the training set: under a long-tail profile the
    validation hold-out comes from images beyond the profile, so it leaves training unchanged
    (a tau_norm run with a validation split reuses a CE run without one)."""
    from longtail.data.datasets import default_profile

    return dataclasses.replace(d, val_per_class=0) if (d.profile or default_profile(d.dataset)) != "none" else d


def _dataset_name(d) -> str:
    """``fashion_mnist_lt`` for a data set under a long-tail profile, the plain name otherwise."""
    from longtail.data.datasets import default_profile

    return f"{d.dataset}_lt" if (d.profile or default_profile(d.dataset)) != "none" else d.dataset


def _tier_words(meta: dict) -> str:
    """`` (quick tier)`` after a suite's name, nothing for a suite without tiers."""
    return f" ({meta['tier']} tier)" if meta["tier"] else ""


def results_dir(meta: dict, results_root: Path | None = None) -> Path:
    """``<results>/<suite>`` for the suite's default tier, ``<results>/<suite>_<tier>`` for another."""
    name = meta["suite"] if meta["default_tier"] else f"{meta['suite']}_{meta['tier']}"
    return Path(results_root or Path("benchmarks/results")) / name


def run_suite(path: Path, runs_root: Path | None = None, results_root: Path | None = None,
              extra_set: list[str] | None = None, log=print, tier: str | None = None, resume: bool = False,
              retry_failed: bool = False, jobs: int = 1, launcher: str = "sequential", slurm: list[str] | None = None,
              wait: bool = False) -> Path:
    """Train every run of the suite not yet finished and write the results files.

    ``resume=False`` (the command line without ``--resume``) refuses to start when any run of
    the grid is already finished or begun, so results are never mixed up by accident.

    A run that fails (a non-finite loss, any error) does not stop the grid: it is recorded as
    failed (``FAILED`` in its folder, a row with its error, stage, epoch and last good
    checkpoint in results.json / results.md), the runs that reuse it are skipped with the reason,
    and the rest run; ``failed_runs(out)`` counts them. A resumed grid leaves failed runs as
    they are unless ``retry_failed``, which continues each from its last checkpoint.

    ``jobs`` > 1 trains that many runs at once in worker processes on this machine (the local
    launcher), each with its share of the CPU threads (and, with several GPUs, its own device);
    a run that reuses another starts when that one has finished. The results are the same rows as
    the sequential grid's on the same threads.

    ``launcher="slurm"`` submits each run as a job through submitit (the suite's ``slurm:`` keys,
    ``slurm`` items ``KEY=VALUE`` on top; ``cluster=local`` runs the jobs as processes here), a
    reusing run's job depending on its base's; ``wait`` follows them to the end, otherwise a
    later call with ``resume`` records what has finished and resubmits what ended without a
    result. Whatever the launcher, a run whose job is still held by the scheduler is left to it."""
    from longtail import launchers
    from longtail.engine.trainer import Trainer

    meta, runs = load_suite(path, runs_root, extra_set, tier)
    opts = {}
    if launcher == "slurm":  # every key checked, and submitit and sbatch found, before anything runs
        opts = launchers.slurm_options(meta["slurm"], slurm, f"suite {path}")
        launchers.check_submitit(opts.get("cluster", "slurm"))
    out = results_dir(meta, results_root)
    recorded = _recorded_rows(out, runs)
    for r in runs:
        _check_folder_config(r)
    reused = _reused(runs)
    kept = {r.key: out / "bases" / r.run_dir.relative_to(meta["runs_root"]) for r in runs
            if meta["keep_bases"] and (r.method, r.imbalance, r.seed) in reused}
    for r in runs:
        if r.key in kept:
            _restore_base(r, kept[r.key])
    failed = {r.key: json.loads((r.run_dir / FAILED).read_text()) for r in runs
              if (r.run_dir / FAILED).exists() and not (r.run_dir / "metrics.json").exists()}
    failed.update({k: x["failed"] for k, x in recorded.items() if x.get("failed") and k not in failed})
    if retry_failed and failed:
        log(f"--retry-failed: {len(failed)} failed run(s) continue from their last checkpoint")
        for r in runs:
            (r.run_dir / FAILED).unlink(missing_ok=True)
            if r.key in recorded and recorded[r.key].get("failed"):
                del recorded[r.key]
        failed = {}
    todo = [r for r in runs if not (r.run_dir / "metrics.json").exists() and r.key not in recorded and r.key not in failed]
    book = launchers.JobBook(meta["runs_root"])
    if book.jobs and launcher != "slurm":  # a job's run is its job's, whatever launches the rest
        held = {r.key: job for r in todo if (job := book.live(r.run_dir))}
        if held:
            log(f"{len(held)} run(s) are still held by the scheduler and left to their jobs: "
                + ", ".join(f"{m} seed {sd} (job {j})" for (m, _, sd), j in held.items()))
            todo = [r for r in todo if r.key not in held]
    if failed:
        log(f"{len(failed)} run(s) failed earlier and are left as they are (--retry-failed continues them): "
            + ", ".join(f"{m} seed {sd}" for m, _, sd in failed))
    # a base that is not reported (report: false) exists only to be reused: once every run that
    # reuses it is finished or recorded (a fresh checkout of a finished part), it is not trained
    while True:
        wanted = _reused(todo)
        idle = [r for r in todo if not r.report and (r.method, r.imbalance, r.seed) not in wanted]
        if not idle:
            break
        todo = [r for r in todo if r not in idle]
    unneeded = sum(1 for r in runs if not r.report and r not in todo and not (r.run_dir / "metrics.json").exists())
    if meta["order"] == "seed":
        # per IF, every method of one seed before the next seed; stable, so a reused base (listed
        # earlier) still runs before the runs that reuse it. Rows keep the suite's order.
        first = {}
        for i, r in enumerate(runs):
            first.setdefault(r.imbalance, i)
        todo.sort(key=lambda r: (first[r.imbalance], meta["seeds"].index(r.seed)))
    begun = [r for r in runs if (r.run_dir / "metrics.json").exists() or r.key in recorded or (r.run_dir / "checkpoint.pt").exists()
             or r.key in failed]
    if begun and not resume:
        raise LongtailError(f"{len(begun)} of the {len(runs)} runs of suite '{meta['suite']}'{_tier_words(meta)} are already "
                            f"finished or begun (in {begun[0].run_dir.parent.parent} or recorded in {out / 'results.json'})",
                            "pass --resume to continue the grid (finished runs are skipped), or --results/--runs to start "
                            "a fresh grid elsewhere")
    # a reusing run needs its base run's weights; a base that is recorded but whose folder is
    # gone (a fresh checkout) is trained again first: the same weights on the same CPU model and
    # torch build, not across CPUs (README, Fault tolerance)
    missing = {(r.reuse, r.imbalance, r.seed) for r in todo if r.reuse and not (Path(r.cfg.model.init) / "model.pt").exists()}
    bases = [r for r in runs if (r.method, r.imbalance, r.seed) in missing and r not in todo and r.key not in failed]
    log(f"suite {meta['suite']}{_tier_words(meta)}: {len(runs)} runs, {len(runs) - len(todo) - unneeded} already finished"
        + (f", {unneeded} unreported base run(s) not needed (every run reusing them is finished)" if unneeded else "")
        + (f"; re-training {len(bases)} recorded base run(s) whose weights are reused" if bases else ""))
    if bases:
        from longtail.engine.runtime import machine_description, pick_device

        here = machine_description(pick_device(bases[0].cfg.engine.device)).split(",")[0]
        there = sorted({recorded[b.key]["machine"].split(",")[0] for b in bases if b.key in recorded} - {here})
        if there:
            log(f"note: those base runs were recorded on {', '.join(there)}, this is {here}: float kernels differ between "
                "CPUs, so the re-trained weights, and the rows that reuse them, can differ from the recorded base rows")
    todo = bases + todo
    _warn_crowded(todo, log)
    # the code this process runs: read once, at the start (a commit made while the grid runs
    # does not change what is already imported)
    commit = _git_commit(out)
    known = _measured(runs, recorded)
    def base_of(r: SuiteRun):
        return next((b.key for b in runs if r.reuse and (b.method, b.imbalance, b.seed) == (r.reuse, r.imbalance, r.seed)), None)

    at_once = jobs if launcher != "slurm" else 1  # runs training at once here, for the ETA

    def announce(i: int, r: SuiteRun) -> bool:
        """The run's line; False where it cannot run (its base failed)."""
        where = f" IF {r.imbalance:g}" if r.imbalance is not None else ""
        log(f"[{len(runs) - len(todo) + i + 1}/{len(runs)}] {r.method}{where} seed {r.seed}{_eta(todo[i:], known, at_once)}")
        if base_of(r) in failed:
            log(f"  skipped: it starts from {r.reuse} seed {r.seed}, which failed")
            return False
        if r.unapplied:
            log(f"  note: {len(r.unapplied)} suite-wide override(s) name a stage {r.method}'s config does not have "
                f"(its stages: {', '.join(s.name or '?' for s in r.cfg.stages)}) and do not apply: {', '.join(r.unapplied)}")
        return True

    def begin(r: SuiteRun) -> bool:
        """Its folder; True where it resumes from a checkpoint."""
        resume_run = (r.run_dir / "checkpoint.pt").exists()
        r.run_dir.mkdir(parents=True, exist_ok=True)
        if not resume_run:
            (r.run_dir / "commit.txt").write_text(commit + "\n")
        return resume_run

    def fail(r: SuiteRun, e: Exception | None) -> None:  # one failed row does not stop the grid
        # (e None: a job recorded why in the run folder)
        failed[r.key] = record_failure(r.run_dir, e) if e is not None else json.loads((r.run_dir / FAILED).read_text())
        log(f"  FAILED: {r.method} seed {r.seed}: {failed[r.key]['error']}" + (
            f" (last good checkpoint {failed[r.key]['checkpoint']})" if failed[r.key]["checkpoint"] else ""))
        if r.key in kept and (r.run_dir / "checkpoint.pt").exists():
            keep_base(r.run_dir, kept[r.key], unfinished=True)
        write_results(meta, runs, out, recorded)

    def finish(r: SuiteRun, wall: float, resume_run: bool) -> None:
        if resume_run:
            wall += earlier_wall(r.run_dir)
        (r.run_dir / "wall_s.txt").write_text(f"{wall:.1f}\n")
        _add_time(known, r, wall)
        if r.key in kept:
            keep_base(r.run_dir, kept[r.key])
        write_results(meta, runs, out, recorded)  # after every run: a killed bench loses nothing

    def interrupted(r: SuiteRun) -> None:
        if r.key in kept and (r.run_dir / "checkpoint.pt").exists():
            keep_base(r.run_dir, kept[r.key], unfinished=True)
            log(f"interrupted: {r.method} seed {r.seed}'s last checkpoint is kept in {kept[r.key]}")

    if launcher == "slurm":
        launchers.run_submitit(todo, opts, meta, kept, book, wait, base_of, announce, begin, fail, finish, log)
    elif jobs > 1:
        launchers.run_local(todo, jobs, failed, base_of, announce, begin, fail, finish, log, interrupted)
    else:
        for i, r in enumerate(todo):
            if not announce(i, r):
                continue
            resume_run = begin(r)
            t = time.perf_counter()
            try:
                Trainer(r.cfg, r.run_dir, resume=resume_run, log=lambda m: None).run()
            except KeyboardInterrupt:  # Ctrl-C / SIGINT: a kept base under way keeps its last checkpoint too
                interrupted(r)
                raise
            except Exception as e:
                fail(r, e)
                continue
            finish(r, time.perf_counter() - t, resume_run)
    rows = write_results(meta, runs, out, recorded)
    done = [x for x in rows if not x.get("failed")]
    if done:
        write_plots(done, out)  # once at the end: a plot per IF costs seconds
    log(f"results: {out / 'results.json'}, {out / 'results.md'}, plots in {out}")
    if failed:
        log(f"{len(failed)} run(s) failed: " + "; ".join(f"{m} seed {sd}: {x['error']}" for (m, _, sd), x in failed.items())
            + " (see results.md; `--resume --retry-failed` continues them from their last checkpoint after a fix)")
    return out


FAILED = "FAILED"  # a run folder's record of a failed run (JSON: error, fix, stage, epoch, checkpoint)


def record_failure(run_dir: Path, e: Exception) -> dict:
    """What failed, where, and from where it can continue; written to the run folder."""
    import re

    text = str(e.problem if isinstance(e, LongtailError) else f"{type(e).__name__}: {e}").strip().splitlines()[0]
    where = re.search(r"stage '([^']+)'.*?epoch (\d+)", text)
    ckpt = run_dir / "checkpoint.pt"
    info = {"error": text, "fix": getattr(e, "fix", ""), "stage": where.group(1) if where else None,
            "epoch": int(where.group(2)) if where else None, "checkpoint": str(ckpt) if ckpt.exists() else None}
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / FAILED, json.dumps(info, indent=1) + "\n")
    return info


def earlier_wall(run_dir: Path) -> float:
    """Seconds earlier processes spent on a finished run that was resumed, as far as its
    checkpoint knew (its metrics.json's run wall time less this process's)."""
    ran = json.loads((Path(run_dir) / "metrics.json").read_text())["run"]
    return ran.get("wall_s", ran["wall_s_this_process"]) - ran["wall_s_this_process"]


def failed_runs(out: Path) -> int:
    """How many rows of a results folder's results.json are failed runs."""
    f = Path(out) / "results.json"
    return sum(1 for x in json.loads(f.read_text()).get("runs", []) if x.get("failed")) if f.exists() else 0


def plan_suite(path: Path, runs_root: Path | None = None, extra_set: list[str] | None = None, tier: str | None = None,
               log=print) -> float | None:
    """``longtail bench SUITE --plan``: the grid's runs, which runs start from which, and what the
    grid would cost on this machine, before anything trains. Each method's epoch is timed on a
    few of its first run's steps here (engine/cost.py: the first stage's; later stages priced
    as :func:`_cost` prices them for the ETA: a head-only epoch a quarter of a full one); a method
    whose data cannot be read here says why and is left out of the total. Returns the total hours
    of the methods it could time (None when none)."""
    from collections import defaultdict

    from longtail.engine.cost import GPU_ASSUMED, epoch_seconds, feature_pass_seconds, gpu_step_seconds, no_estimate
    from longtail.engine.trainer import Trainer

    meta, runs = load_suite(path, runs_root, extra_set, tier)
    methods = list(dict.fromkeys(r.method for r in runs))
    ifs = sorted({r.key[1] for r in runs})
    log(f"suite {meta['suite']}{_tier_words(meta)}: {len(runs)} runs, {len(methods)} methods x IF {', '.join(f'{i:g}' for i in ifs)} "
        f"x seeds {', '.join(map(str, meta['seeds']))}")
    reusers = defaultdict(list)
    for r in runs:
        if r.reuse and r.method not in reusers[r.reuse]:
            reusers[r.reuse].append(r.method)
    if reusers:
        log("reuse (each run of the right starts from the same IF and seed's run of the left):")
        for base, after in reusers.items():
            log(f"  {base}{' (not reported)' if not next(x for x in runs if x.method == base).report else ''} -> {', '.join(after)}")
    total, gpu_total, timed, lines, shaped, memo = 0.0, 0.0, 0, [], set(), {}
    for m in methods:
        mine = [r for r in runs if r.method == m]
        r0 = mine[0]
        counts: dict = {}  # one step's ops and flops, and an epoch's steps: the GPU estimate
        try:
            trainer = Trainer(r0.cfg, r0.run_dir, log=lambda msg: None)
            why = no_estimate(trainer)
            if why:
                raise LongtailError(why, "")
            # the first stage's epoch, as engine/cost.py times it (a reusing run's too: _cost weighs its stages)
            unit = feature_pass_seconds(trainer) if r0.cfg.stages[0].cache_features else epoch_seconds(trainer, counts=counts)
        except LongtailError as e:
            unit = _shape_epoch_seconds(r0.cfg, counts, memo)  # CIFAR not on this machine: its shape and counts are known
            if unit is None:
                lines.append(f"| {m} | {len(mine)} | {'+'.join(str(s.epochs) for s in r0.cfg.stages)} | no estimate here: "
                             f"{e.problem} | — | — | — |")
                continue
            unit_said = f"{unit:.1f} s *"
            shaped.add(e.problem)
        else:
            unit_said = f"{unit:.1f} s"
        seconds = sum(_cost(r) for r in mine) * unit
        total += seconds
        timed += len(mine)
        gpu = ""
        if counts:
            gpu_unit = counts["steps"] * gpu_step_seconds(counts["ops"], counts["flops"], counts.get("engine_ops"))
            gpu_total += sum(_cost(r) for r in mine) * gpu_unit
            gpu = (f"{counts['ops']} ops, {counts['flops'] / 1e9:.1f} GFLOP a step | {gpu_unit:.2f} s | "
                   f"{sum(_cost(r) for r in mine) * gpu_unit / 3600:.2f} h")
        lines.append(f"| {m} | {len(mine)} | {'+'.join(str(s.epochs) for s in r0.cfg.stages)} | {unit_said} | {seconds / 3600:.2f} h | "
                     + (gpu or "— | — | —") + " |")
    log("| method | runs | epochs (stages) | an epoch here (its first stage; timed) | runs' total | counted | "
        f"an epoch on one {GPU_ASSUMED['gpu']} (est.) | runs' total there (est.) |\n|---|---:|---|---|---:|---|---:|---:|")
    for line in lines:
        log(line)
    if shaped:
        log("* timed on random images of the data's shape, a plain cross-entropy step of the stage's trainable parts, "
            f"and the long-tail profile's image count: the data is not here ({'; '.join(sorted(shaped))})")
    if timed:
        log(f"total: about {total / 3600:.1f} h on this machine for the {timed} of {len(runs)} runs timed "
            "(each run alone; a reusing run's stage 1 is not counted again)")
    if gpu_total:
        a = GPU_ASSUMED
        log(f"on one {a['gpu']}: about {gpu_total / 3600:.1f} GPU-hours, estimated from one training step's ops and "
            f"floating-point operations counted here (the ops as the emulated CUDA device counts them, one kernel each; "
            f"+{a['engine_ops']} ops of the engine and data path where the step counted was a plain one on random "
            "images): a step takes the longer of its arithmetic at "
            f"{a['utilisation']:.0%} of {a['peak_tflops']:g} dense bf16 TFLOP/s and its ops at {a['us_per_op']:g} us each "
            "(eager PyTorch's dispatch and launch), data on the device, no host sync in a step; evaluation and "
            "checkpoints priced as one epoch a run. CUDA graphs (engine.cuda_graphs) cut the ops' share; a GPU's "
            "measured epoch (`longtail train` says it, engine/cost.py) replaces every assumption")
    return total / 3600 if timed else None


# the CIFAR-LT constructions' shapes: classes, images a class before the profile, pixels
CIFAR_SHAPES = {"cifar10": (10, 5000, 32), "cifar100": (100, 500, 32)}


def _shape_epoch_seconds(cfg: RunConfig, counts: dict | None = None, memo: dict | None = None) -> float | None:
    """An epoch of ``cfg``'s first stage timed on random images of its data's shape, for CIFAR
    whose files are not here (the long-tail profile gives the image count); None otherwise.
    ``counts`` gets a step's ``ops`` and ``flops`` at the stage's batch size and the epoch's
    ``steps`` (as :func:`longtail.engine.cost.epoch_seconds` gives them). ``memo`` keeps each
    (network, precision, stage kind) step once, so methods that share one are timed alike."""
    import math

    from longtail.budget import PROBE_BATCH, Probe
    from longtail.data.profiles import PROFILES
    from longtail.engine.trainer import resolve_stage

    d = cfg.data
    if d.dataset not in CIFAR_SHAPES or (d.profile or "exponential") not in PROFILES:
        return None
    classes, n_max, size = CIFAR_SHAPES[d.dataset]
    images = sum(PROFILES[d.profile or "exponential"](classes, d.max_per_class or n_max, d.imbalance_factor))
    rs = resolve_stage(0, cfg.stages[0])
    key = (cfg.model.arch, cfg.model.head, classes, cfg.engine.precision, cfg.engine.channels_last, rs.train, rs.backbone_bn)
    memo = {} if memo is None else memo
    if key not in memo:
        probe = Probe(cfg, 3, classes)
        memo[key] = (probe.step(size, rs), *probe.counts(size, rs))
    step, ops, flops = memo[key]
    if counts is not None:
        batch = cfg.stages[0].batch_size
        counts.update(ops=ops, flops=flops * batch / PROBE_BATCH, steps=math.ceil(images / batch))
    return images * step


def _reused(runs: list[SuiteRun]) -> set[tuple]:
    """(method, IF, seed) of every run that one of ``runs`` starts from."""
    return {(r.reuse, r.imbalance, r.seed) for r in runs if r.reuse}


# what a reused run leaves for the runs that start from it: weights, per-stage results, config;
# an interrupted one leaves its last checkpoint instead of the weights
BASE_FILES = ("model.pt", "metrics.json", "config.yaml", "commit.txt", "wall_s.txt")
UNFINISHED_FILES = ("checkpoint.pt", "checkpoint.pt.prev", "config.yaml", "commit.txt")


def keep_base(run_dir: Path, kept: Path, unfinished: bool = False) -> None:
    """With ``keep_bases: true``, a finished run that others reuse is copied beside the results
    (``<results>/bases/...``, about 0.3 MB for ResNet-8), so a fresh checkout that still has
    runs reusing it starts from these very weights instead of training it again. An interrupted
    one (``unfinished``) is kept as its last checkpoint (1 MB for a ResNet-8 BNS stage), so a
    long base continues on another machine from where it stopped."""
    kept.mkdir(parents=True, exist_ok=True)
    for f in set(BASE_FILES + UNFINISHED_FILES):
        (kept / f).unlink(missing_ok=True)
    for f in UNFINISHED_FILES if unfinished else BASE_FILES:
        if (run_dir / f).exists():
            shutil.copy2(run_dir / f, kept / f)


def _restore_base(r: SuiteRun, kept: Path) -> None:
    """The inverse of :func:`keep_base`, for a run folder with neither weights nor a checkpoint;
    a kept run of another config (the suite changed since) is left alone, and the run is trained
    as usual."""
    here = [f for f in ("model.pt", "checkpoint.pt", "checkpoint.pt.prev") if (r.run_dir / f).exists()]
    files = BASE_FILES if (kept / "model.pt").exists() else UNFINISHED_FILES
    if here or not (kept / files[0]).exists():
        return
    if not (kept / "config.yaml").exists() or same_run(yaml.safe_load((kept / "config.yaml").read_text()), r.cfg, SAME_RUN_FREE):
        return
    r.run_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        if (kept / f).exists():
            shutil.copy2(kept / f, r.run_dir / f)


def _check_folder_config(r: SuiteRun) -> None:
    """A run folder (possibly shared with another suite) must hold this very run."""
    f = r.run_dir / "config.yaml"
    # through the dataclasses, so keys added to the config schema since the run compare equal
    if f.exists() and same_run(yaml.safe_load(f.read_text()), r.cfg, SAME_RUN_FREE):
        raise LongtailError(f"{r.run_dir} holds a run with a different config than '{r.method}' seed {r.seed} of this suite",
                            "give the method another id, or another 'runs' folder to the suite")


def _warn_crowded(todo: list[SuiteRun], log) -> None:
    """Say so before the grid starts when other processes leave its CPU runs fewer free cores
    than their torch threads (each run would wait on its own threads)."""
    from longtail.engine.runtime import cpu_threads, crowded_threads

    crowded = crowded_threads(max((cpu_threads(r.cfg.engine) for r in todo), default=0))
    if crowded:
        log(f"warning: {crowded[1]}")


def _measured(runs: list[SuiteRun], recorded: dict) -> dict[tuple, tuple[float, float]]:
    """{(method, IF): (wall seconds, cost)} summed over the grid's finished runs (their
    wall_s.txt, or their recorded row's wall_s), the ETA's measure of what each method costs
    here: another seed of the same method and IF takes about as long."""
    known: dict[tuple, tuple[float, float]] = {}
    for r in runs:
        f = r.run_dir / "wall_s.txt"
        if (r.run_dir / "metrics.json").exists() and f.exists():
            wall = float(f.read_text())
        elif r.key in recorded and recorded[r.key].get("wall_s"):
            wall = float(recorded[r.key]["wall_s"])
        else:
            continue
        _add_time(known, r, wall)
    return known


def _add_time(known: dict[tuple, tuple[float, float]], r: SuiteRun, wall: float) -> None:
    seconds, costs = known.get((r.method, r.imbalance), (0.0, 0.0))
    known[(r.method, r.imbalance)] = (seconds + wall, costs + _cost(r))


def _eta(todo: list[SuiteRun], known: dict[tuple, tuple[float, float]], jobs: int = 1) -> str:
    """", ETA n min" for the runs in ``todo``: each at its method's measured seconds per unit
    of :func:`_cost` where a run of the same method and IF has finished, else at the rate of
    every finished run together, shared among ``jobs`` runs at once (the local launcher); ""
    before any run has finished."""
    seconds, costs = sum(s for s, _ in known.values()), sum(c for _, c in known.values())
    if not costs:
        return ""
    rate = {k: s / c for k, (s, c) in known.items() if c}
    left = sum(_cost(r) * rate.get((r.method, r.imbalance), seconds / costs) for r in todo)
    return f", ETA {left / 60 / max(1, jobs):.0f} min"


def _cost(r: SuiteRun) -> float:
    """Relative cost of a run for the ETA: epochs still to train, plus one for evaluation. An
    epoch that trains only the head counts a quarter: the backbone runs forward only, under no_grad
    (counted in full, a grid of cheap classifier stages after full ones made the ETA double)."""
    from longtail.engine.trainer import resolve_stage

    start = r.cfg.start_stage
    return 1.0 + sum(s.epochs * (HEAD_EPOCH_COST if resolve_stage(start + i, s).train == "head" else 1.0)
                     for i, s in enumerate(r.cfg.stages[start:]))


def _git_commit(out: Path | None = None) -> str:
    """HEAD, with ``-dirty`` when tracked files differ from it: the bench's own results folder
    ``out`` does not count (it rewrites it after every run, which would mark every later run)."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()

    try:
        rev, top = git("rev-parse", "--short", "HEAD"), Path(git("rev-parse", "--show-toplevel")).resolve()
        results = Path(out).resolve() if out is not None else None
        spec = [":/", f":(top,exclude){results.relative_to(top)}"] if results and results.is_relative_to(top) else []
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *spec)
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _recorded_rows(out: Path, runs: list[SuiteRun]) -> dict:
    """Rows of an earlier results.json whose run config is unchanged: those runs are done,
    even in a fresh checkout without the run folders."""
    f = out / "results.json"
    if not f.exists():
        return {}
    want = {r.key: r.cfg for r in runs}
    rows = json.loads(f.read_text()).get("runs", [])
    out = {}
    for x in rows:
        k = (x["method"], float(x["imbalance_factor"]), x["seed"])
        if k in want and x.get("config") is not None:
            try:
                if not same_run(x["config"], want[k], SAME_RUN_FREE):
                    out[k] = x
            except LongtailError:  # a row whose config no longer validates is not this run
                pass
    return out


def write_results(meta: dict, runs: list[SuiteRun], out: Path, recorded: dict | None = None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in runs:
        mfile = r.run_dir / "metrics.json"
        failed_here = not mfile.exists() and (r.run_dir / FAILED).exists()
        if not r.report and not failed_here:  # (a base that failed is listed all the same)
            continue
        if failed_here:  # its row says why, and has no metrics
            rows.append({"method": r.method, "dataset": _dataset_name(r.cfg.data), "imbalance_factor": r.cfg.data.imbalance_factor,
                         "seed": r.seed, "epochs": [s.epochs for s in r.cfg.stages], "tier": meta["tier"], "metrics": {},
                         "failed": json.loads((r.run_dir / FAILED).read_text()), "reuses": r.reuse,
                         "command": meta["command"], "config": to_dict(r.cfg)})
            continue
        if not mfile.exists():
            if recorded and r.key in recorded:
                rows.append(recorded[r.key])
            continue
        m = json.loads(mfile.read_text())
        config = to_dict(r.cfg)
        if (r.run_dir / "config.yaml").exists():  # the threads it ran on, which may not be this grid's (SAME_RUN_FREE)
            ran = yaml.safe_load((r.run_dir / "config.yaml").read_text()) or {}
            config["engine"]["threads"] = ran.get("engine", {}).get("threads", config["engine"]["threads"])
        wall = (r.run_dir / "wall_s.txt").read_text().strip() if (r.run_dir / "wall_s.txt").exists() else None
        commit = (r.run_dir / "commit.txt").read_text().strip() if (r.run_dir / "commit.txt").exists() else "unknown"
        rows.append({
            "method": r.method, "dataset": _dataset_name(r.cfg.data),
            "imbalance_factor": r.cfg.data.imbalance_factor, "seed": r.seed,
            "epochs": [s.epochs for s in r.cfg.stages], "tier": meta["tier"],
            # balanced accuracy leads where the test set is imbalanced (an image folder's split)
            "metrics": {**({"balanced": m["balanced"]} if not m.get("test_balanced", True) else {}),
                        **{k: m.get(k) for k in METRIC_KEYS}, "per_class": m["per_class"]},
            "class_counts": m["class_counts"],
            "reuses": r.reuse,
            **({"unapplied_overrides": r.unapplied} if r.unapplied else {}),
            "command": meta["command"], "config": config, "commit": commit,
            "machine": m["run"]["machine"], "torch": m["run"]["torch"], "date": m["run"]["date"],
            "wall_s": float(wall) if wall else m["run"].get("wall_s", m["run"]["wall_s_this_process"]),
        })
    # a grid stopped (Ctrl-C, kill) while writing keeps the last whole file
    write_atomic(out / "results.json", json.dumps({"suite": meta["suite"], "runs": rows}, indent=1) + "\n")
    text = results_table(meta, [x for x in rows if not x.get("failed")])
    failures = [x for x in rows if x.get("failed")]
    if failures:
        text += "\n## Failed runs\n\n| method | IF | seed | stage | epoch | error | last good checkpoint |\n|---|---:|---:|---|---:|---|---|\n"
        text += "".join(f"| {x['method']} | {x['imbalance_factor']:g} | {x['seed']} | {x['failed'].get('stage') or '—'} | "
                        f"{x['failed'].get('epoch') or '—'} | {x['failed']['error']} | {x['failed'].get('checkpoint') or '—'} |\n"
                        for x in failures)
    write_atomic(out / "results.md", text)
    return rows


def _mean_std(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}"


def _groups(rows: list[dict]) -> list[tuple[str, float, list[dict]]]:
    """Rows split by (data set, imbalance factor), in the order they first appear."""
    keys = dict.fromkeys((r["dataset"], r["imbalance_factor"]) for r in rows)
    return [(ds, imb, [r for r in rows if (r["dataset"], r["imbalance_factor"]) == (ds, imb)]) for ds, imb in keys]


def results_table(meta: dict, rows: list[dict]) -> str:
    """Mean ± sample std over seeds, one row per method and a table per (data set, IF), from
    results.json rows alone."""
    cols = [k for k in ("balanced",) + METRIC_KEYS if any(r["metrics"].get(k) is not None for r in rows)]
    lines = [f"# {meta['suite']}{_tier_words(meta)}", ""]
    lines += [f"{text.strip()}\n" for text in (meta.get("description"), meta.get("tier_description")) if text]
    lines += [f"Mean ± sample standard deviation over seeds; accuracies and ECE in percent. "
              f"Regenerate: `{meta['command']}`.", ""]
    groups = _groups(rows)
    entries = published.load()
    for ds, imb, sub in groups:
        if len(groups) > 1:
            lines += [f"## {ds}, imbalance factor {imb:g}", ""]
        by = {mid: [r for r in sub if r["method"] == mid] for mid in dict.fromkeys(r["method"] for r in sub)}
        joined = {mid: published.match(rs, entries) for mid, rs in by.items()}
        extra = any(joined.values())  # published and ours − published, where a row has a number
        lines += ["| method | seeds | " + " | ".join(cols) + (" | published | ours − published" if extra else "") + " |",
                  "|---|---:|" + "---:|" * (len(cols) + 2 * extra)]
        notes = []
        for mid, rs in by.items():
            cells = [_mean_std([r['metrics'].get(c) for r in rs]) for c in cols]
            e = joined[mid]
            if extra:
                ours = _mean([r["metrics"].get("overall") for r in rs])
                cells += [f"{e['top1']:.1f}", f"{ours - e['top1']:+.1f}"] if e and ours is not None else ["—", "—"]
                if e and ours is not None:
                    notes.append(f"- `{mid}`: {ours:.2f} against {e['top1']:.2f} ({e['paper']}, {e['table']}; {e['backbone']}"
                                 f"{', %s epochs' % e['epochs'] if e.get('epochs') else ''}): {published.reproduction(ours, e['top1'])}")
            lines.append(f"| {mid} | {len(rs)} | " + " | ".join(cells) + " |")
        lines.append("")
        if notes:
            lines += ["Reproduction (overall accuracy, mean over seeds, against the published top-1; "
                      "benchmarks/published.yaml):", *notes, ""]
    if rows:
        r0 = rows[0]
        first, last = min(r["date"] for r in rows), max(r["date"] for r in rows)
        commits = list(dict.fromkeys(r["commit"] for r in rows))
        commits = (f"commit {', '.join(commits)}" if len(commits) <= 3
                   else f"{len(commits)} commits (each run's is in results.json)")
        lines += [f"Machine: {r0['machine']}; torch {r0['torch']}; {commits}; "
                  + (f"date {first}" if first == last else f"dates {first} to {last}")
                  + f"; wall time of the runs in these tables {sum(r['wall_s'] for r in rows) / 60:.0f} min "
                    "(base runs not reported, such as a shared representation stage, not counted)."]
    return "\n".join(lines) + "\n"


def _mean(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def per_class_means(rows: list[dict]) -> dict[str, list[float]]:
    """Each method's per-class accuracy averaged over its rows (seeds); classes without test
    images (None) are skipped in the mean."""
    import numpy as np

    return {m: np.nanmean(np.array([[np.nan if v is None else v for v in r["metrics"]["per_class"]]
                                    for r in rows if r["method"] == m], dtype=float), 0).tolist()
            for m in dict.fromkeys(r["method"] for r in rows)}


def write_plots(rows: list[dict], out: Path) -> list[Path]:
    """``per_class[_<ds>_if<IF>].png`` (every method's per-class accuracy, mean over seeds, against
    class size) and, with several IFs, ``overall_vs_if.png`` and ``tail_vs_if.png``."""
    from longtail.evaluation import plots

    made = []
    groups = _groups(rows)
    for ds, imb, sub in groups:
        name = "per_class.png" if len(groups) == 1 else f"per_class_{ds}_if{imb:g}.png"
        # rows trained on different amounts of the data (max_per_class) have their own class sizes
        by_counts = {}
        for r in sub:
            by_counts.setdefault(tuple(r["class_counts"]), []).append(r)
        for counts, part in by_counts.items():
            n = f"{sum(counts):,} training images"
            made.append(plots.plot_per_class(
                per_class_means(part), list(counts),
                out / (name if len(by_counts) == 1 else name.replace(".png", f"_{sum(counts)}img.png")),
                title=f"{ds}, IF {imb:g}{', ' + n if len(by_counts) > 1 else ''}: per-class accuracy, mean over seeds"))
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        sub = [r for r in rows if r["dataset"] == ds]
        if len({r["imbalance_factor"] for r in sub}) > 1:
            for metric in ("overall", "tail"):
                suffix = "" if len({r["dataset"] for r in rows}) == 1 else f"_{ds}"
                made.append(plots.plot_against_if(sub, out / f"{metric}_vs_if{suffix}.png", metric=metric))
    return made
