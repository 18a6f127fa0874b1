"""Benchmark suites: a grid of (method × seed) runs on the engine, and its results files.

A suite file names the method configs and the seeds::

    suite: fashion_mnist_lt_baselines
    tier: quick
    seeds: [0, 1, 2]
    set: []                      # overrides applied to every run
    runs: runs/bench/<suite>     # the run folders (suites may share one: equal runs run once)
    methods:
      ce: configs/fashion_mnist_lt/ce.yaml
      crt: {config: configs/fashion_mnist_lt/crt.yaml, reuse: ce}
      bns_repr: {config: configs/fashion_mnist_lt/bns_repr.yaml, report: false}
      h2tf_p0.5: {config: configs/fashion_mnist_lt/ce_h2tf.yaml, reuse: ce, set: [stages.1.method_args.h2tf.ratio=0.5]}

``reuse: ce`` runs only the stages after the first, starting from the ``ce`` run of the same
seed (its stage 1 must be configured identically; this is checked), so every decoupled
method shares one stage-1 model; ``report: false`` keeps a run that exists only to be reused
out of the results. Finished runs (``metrics.json`` in the run folder, or a row
of ``results.json`` with the same config) are skipped and interrupted ones resumed, so a
killed bench continues where it stopped; results are written after every run.

Outputs in ``benchmarks/results/<suite>/``: ``results.json`` (PROTOCOL.md schema) and
``results.md`` (mean ± sample std over seeds), both made from the runs alone.
"""

from __future__ import annotations

import copy
import json
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from longtail.config import RunConfig, apply_overrides, from_dict, to_dict
from longtail.errors import LongtailError

METRIC_KEYS = ("overall", "many", "medium", "few", "head", "tail", "tail3", "ece")


@dataclass
class SuiteRun:
    method: str
    seed: int
    cfg: RunConfig
    run_dir: Path
    reuse: str | None
    report: bool = True


def _read_yaml(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LongtailError(f"file not found: {path}", "check the path in the suite file")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise LongtailError(f"{path} must hold a mapping", "write 'key: value' lines")
    return data


def load_suite(path: Path, runs_root: Path | None = None, extra_set: list[str] | None = None) -> tuple[dict, list[SuiteRun]]:
    suite = _read_yaml(path)
    allowed = {"suite", "tier", "seeds", "set", "methods", "description", "runs"}
    unknown = set(suite) - allowed
    if unknown:
        raise LongtailError(f"suite {path}: unknown key(s) {sorted(unknown)}", f"valid keys: {sorted(allowed)}")
    if not suite.get("methods"):
        raise LongtailError(f"suite {path} lists no methods", "add a 'methods:' mapping of id -> config")
    name = suite.get("suite") or Path(path).stem
    seeds = suite.get("seeds", [0])
    overrides = list(suite.get("set", [])) + list(extra_set or [])
    runs_root = Path(runs_root or suite.get("runs") or Path("runs") / "bench" / name)
    specs = {}
    for mid, spec in suite["methods"].items():
        spec = {"config": spec} if isinstance(spec, str) else dict(spec)
        keys = {"config", "reuse", "report", "set"}
        if set(spec) - keys:
            raise LongtailError(f"suite {path}: method '{mid}' has unknown keys {sorted(set(spec) - keys)}",
                                f"use {', '.join(sorted(keys))}")
        if spec.get("reuse") and spec["reuse"] not in specs:
            raise LongtailError(f"suite {path}: '{mid}' reuses '{spec['reuse']}', which the suite does not run before it",
                                "list the reused method earlier in 'methods'")
        specs[mid] = spec
    runs = []
    for mid in specs:  # suite order: the order runs are made and rows are reported
        spec = specs[mid]
        base_data = _read_yaml(Path(spec["config"]))
        for seed in seeds:
            data = apply_overrides(copy.deepcopy(base_data), overrides + list(spec.get("set", [])) + [f"seed={seed}"])
            run_dir = runs_root / mid / f"seed{seed}"
            reuse = spec.get("reuse")
            if reuse:
                base_cfg = next(r.cfg for r in runs if r.method == reuse and r.seed == seed)
                _check_reusable(mid, data, base_cfg)
                data.setdefault("model", {})["init"] = str(runs_root / reuse / f"seed{seed}")
                data["start_stage"] = 1
            cfg = from_dict(RunConfig, data)
            runs.append(SuiteRun(mid, seed, cfg, run_dir, reuse, bool(spec.get("report", True))))
    return {"suite": name, "tier": suite.get("tier", ""), "seeds": seeds, "path": str(path)}, runs


def _check_reusable(mid: str, data: dict, base: RunConfig):
    cfg = from_dict(RunConfig, copy.deepcopy(data))
    same = (cfg.data == base.data and cfg.model == base.model and cfg.augment == base.augment
            and len(base.stages) == 1 and cfg.stages[0] == base.stages[0])
    if not same:
        raise LongtailError(f"'{mid}' cannot reuse the stage-1 run: its data/model/augment/stage 1 differ from the base",
                            "make stage 1 of both configs identical, or drop 'reuse'")


def run_suite(path: Path, runs_root: Path | None = None, results_root: Path | None = None,
              extra_set: list[str] | None = None, log=print) -> Path:
    from longtail.engine.trainer import Trainer

    meta, runs = load_suite(path, runs_root, extra_set)
    out = Path(results_root or Path("benchmarks/results")) / meta["suite"]
    recorded = _recorded_rows(out, runs)
    for r in runs:
        _check_folder_config(r)
    todo = [r for r in runs if not (r.run_dir / "metrics.json").exists() and (r.method, r.seed) not in recorded]
    # a reusing run needs its base run's weights; a base that is recorded but whose folder is
    # gone (a fresh checkout) is trained again first (deterministic: the same numbers)
    missing = {(r.reuse, r.seed) for r in todo if r.reuse and not (Path(r.cfg.model.init) / "model.pt").exists()}
    bases = [r for r in runs if (r.method, r.seed) in missing and r not in todo]
    log(f"suite {meta['suite']}: {len(runs)} runs, {len(runs) - len(todo)} already finished"
        + (f"; re-training {len(bases)} recorded base run(s) whose weights are reused" if bases else ""))
    todo = bases + todo
    t0 = time.perf_counter()
    cost = [_cost(r) for r in todo]
    for i, r in enumerate(todo):
        spent = sum(cost[:i])
        eta = "" if not spent else f", ETA {(time.perf_counter() - t0) / spent * sum(cost[i:]) / 60:.0f} min"
        log(f"[{len(runs) - len(todo) + i + 1}/{len(runs)}] {r.method} seed {r.seed}{eta}")
        resume = (r.run_dir / "checkpoint.pt").exists()
        r.run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            (r.run_dir / "commit.txt").write_text(_git_commit() + "\n")
        t = time.perf_counter()
        Trainer(r.cfg, r.run_dir, resume=resume, log=lambda m: None).run()
        (r.run_dir / "wall_s.txt").write_text(f"{time.perf_counter() - t:.1f}\n")
        write_results(meta, runs, out, recorded)  # after every run: a killed bench loses nothing
    log(f"results: {out / 'results.json'}, {out / 'results.md'}")
    return out


def _check_folder_config(r: SuiteRun) -> None:
    """A run folder (possibly shared with another suite) must hold this very run."""
    f = r.run_dir / "config.yaml"
    # through the dataclasses, so keys added to the config schema since the run compare equal
    if f.exists() and to_dict(from_dict(RunConfig, yaml.safe_load(f.read_text()))) != to_dict(r.cfg):
        raise LongtailError(f"{r.run_dir} holds a run with a different config than '{r.method}' seed {r.seed} of this suite",
                            "give the method another id, or another 'runs' folder to the suite")


def _cost(r: SuiteRun) -> float:
    """Relative cost of a run for the ETA: epochs still to train, plus one for evaluation."""
    return 1.0 + sum(s.epochs for s in r.cfg.stages[r.cfg.start_stage:])


def _git_commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _recorded_rows(out: Path, runs: list[SuiteRun]) -> dict:
    """Rows of an earlier results.json whose run config is unchanged: those runs are done,
    even in a fresh checkout without the run folders."""
    f = out / "results.json"
    if not f.exists():
        return {}
    want = {(r.method, r.seed): to_dict(r.cfg) for r in runs}
    rows = json.loads(f.read_text()).get("runs", [])
    return {(x["method"], x["seed"]): x for x in rows if want.get((x["method"], x["seed"])) == x.get("config")}


def write_results(meta: dict, runs: list[SuiteRun], out: Path, recorded: dict | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in runs:
        if not r.report:
            continue
        mfile = r.run_dir / "metrics.json"
        if not mfile.exists():
            if recorded and (r.method, r.seed) in recorded:
                rows.append(recorded[(r.method, r.seed)])
            continue
        m = json.loads(mfile.read_text())
        wall = (r.run_dir / "wall_s.txt").read_text().strip() if (r.run_dir / "wall_s.txt").exists() else None
        commit = (r.run_dir / "commit.txt").read_text().strip() if (r.run_dir / "commit.txt").exists() else "unknown"
        rows.append({
            "method": r.method, "dataset": f"{r.cfg.data.dataset}_lt" if r.cfg.data.profile != "none" else r.cfg.data.dataset,
            "imbalance_factor": r.cfg.data.imbalance_factor, "seed": r.seed,
            "epochs": [s.epochs for s in r.cfg.stages], "tier": meta["tier"],
            "metrics": {**{k: m.get(k) for k in METRIC_KEYS}, "per_class": m["per_class"]},
            "class_counts": m["class_counts"],
            "reuses": r.reuse,
            "command": f"longtail bench {meta['path']}", "config": to_dict(r.cfg), "commit": commit,
            "machine": m["run"]["machine"], "torch": m["run"]["torch"], "date": m["run"]["date"],
            "wall_s": float(wall) if wall else m["run"]["wall_s_this_process"],
        })
    (out / "results.json").write_text(json.dumps({"suite": meta["suite"], "runs": rows}, indent=1) + "\n")
    (out / "results.md").write_text(results_table(meta, rows))


def _mean_std(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}"


def results_table(meta: dict, rows: list[dict]) -> str:
    """Mean ± sample std over seeds, one row per method, from results.json rows alone."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cols = [k for k in METRIC_KEYS if any(r["metrics"].get(k) is not None for r in rows)]
    lines = [f"# {meta['suite']} ({meta['tier']} tier)", "",
             f"Mean ± sample standard deviation over seeds; accuracies and ECE in percent. "
             f"Regenerate: `longtail bench {meta['path']}`.", "",
             "| method | seeds | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for mid in methods:
        rs = [r for r in rows if r["method"] == mid]
        lines.append(f"| {mid} | {len(rs)} | " + " | ".join(_mean_std([r['metrics'].get(c) for r in rs]) for c in cols) + " |")
    if rows:
        r0 = rows[0]
        lines += ["", f"Machine: {r0['machine']}; torch {r0['torch']}; commit {r0['commit']}; dates "
                  f"{min(r['date'] for r in rows)} to {max(r['date'] for r in rows)}; "
                  f"total wall time {sum(r['wall_s'] for r in rows) / 60:.0f} min."]
    return "\n".join(lines) + "\n"
