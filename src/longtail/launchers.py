"""How a grid's runs get trained besides one after another in the bench process: the local
launcher (several runs at once on this machine, in spawned processes) and the submitit launcher
(one Slurm job a run, or submitit's local executor for trying a submission without a cluster).

:func:`longtail.bench.run_suite` decides what is to run and records the results; a launcher
only starts runs and reports, through the callbacks it is given, when each begins, finishes
or fails: ``announce(i, run) -> bool`` (its line; False where it cannot run), ``begin(run) ->
bool`` (its folder; True where it resumes), ``finish(run, wall_s, resumed)`` and ``fail(run,
error)`` (``error`` None: the run folder's FAILED record says what happened).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from pathlib import Path

from longtail.config import RunConfig, from_dict, to_dict
from longtail.errors import LongtailError
from longtail.files import write_atomic


def train_one(cfg: dict, run_dir: str, resume: bool, threads: int, device: str) -> None:
    """A worker process's run (the local launcher): the config with its share of the threads."""
    from longtail.engine.trainer import Trainer

    run = from_dict(RunConfig, cfg)
    run = dataclasses.replace(run, engine=dataclasses.replace(run.engine, threads=threads, device=device or run.engine.device))
    Trainer(run, Path(run_dir), resume=resume, log=lambda m: None).run()


def run_local(todo: list, jobs: int, failed: dict, base_of, announce, begin, fail, finish, log, interrupted=None) -> None:
    """``jobs`` runs at once, in spawned processes (a forked one would inherit torch's thread
    pools); a run waits for the run it reuses. Ctrl-C / kill stops the workers: their runs
    continue from their last checkpoints with --resume."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    import torch

    threads = max(1, (os.cpu_count() or 1) // jobs)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    log(f"local launcher: {jobs} runs at once, {threads} torch thread(s) each"
        + (f", on {gpus} GPUs in turn" if gpus > 1 else ""))
    keys = {r.key for r in todo}
    pending, running, done, slot = list(enumerate(todo)), {}, set(), 0
    pool = ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"))
    try:
        while pending or running:
            for item in list(pending):
                if len(running) >= jobs:
                    break
                i, r = item
                b = base_of(r)
                if b in keys and b not in done and b not in failed:  # the run it starts from is still to finish
                    continue
                pending.remove(item)
                if not announce(i, r):
                    continue
                resume_run = begin(r)
                device = f"cuda:{slot % gpus}" if gpus > 1 else ""
                slot += 1
                running[pool.submit(train_one, to_dict(r.cfg), str(r.run_dir), resume_run, threads, device)] = \
                    (r, resume_run, time.perf_counter())
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                r, resume_run, t = running.pop(fut)
                try:
                    fut.result()
                except Exception as e:
                    fail(r, e)
                    continue
                done.add(r.key)
                finish(r, time.perf_counter() - t, resume_run)
    except KeyboardInterrupt:
        for p in list(getattr(pool, "_processes", {}).values()):
            p.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for r, _, _ in running.values():  # (a kept base under way keeps its last checkpoint)
            if interrupted is not None:
                interrupted(r)
        raise
    pool.shutdown()


# ---------------------------------------------------------------------------------------------
# submitit: one job a run

# the suite's `slurm:` keys (and `--slurm KEY=VALUE`) and submitit's AutoExecutor parameter each
# becomes; `cluster: local` runs the same jobs as processes here (submitit's local executor)
SLURM_KEYS = {
    "partition": "slurm_partition", "account": "slurm_account", "qos": "slurm_qos", "constraint": "slurm_constraint",
    "time_min": "timeout_min", "mem_gb": "mem_gb", "cpus_per_task": "cpus_per_task", "gpus_per_node": "gpus_per_node",
    "setup": "slurm_setup", "additional": "slurm_additional_parameters",
}
CLUSTERS = ("slurm", "local")
# what the launcher itself reads: where jobs run, and how often --wait looks at them
LAUNCH_KEYS = ("cluster", "poll_s")
# a job the scheduler still holds (anything else has ended, or the scheduler forgot it)
LIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
               "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED"}


def slurm_options(suite_keys: dict | None, cli: list[str] | None, where: str) -> dict:
    """The suite's ``slurm:`` mapping with ``--slurm KEY=VALUE`` on top, checked: every key
    named, with its fix, before anything is submitted."""
    import yaml

    opts = dict(suite_keys or {})
    for item in cli or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise LongtailError(f"--slurm {item!r} is not KEY=VALUE", "write e.g. --slurm partition=gpu --slurm time_min=120")
        opts[key.strip()] = yaml.safe_load(value)
    unknown = sorted(set(opts) - set(SLURM_KEYS) - set(LAUNCH_KEYS))
    if unknown:
        raise LongtailError(f"{where}: unknown slurm key(s) {unknown}",
                            f"valid keys: {', '.join(sorted(set(SLURM_KEYS) | set(LAUNCH_KEYS)))}")
    if opts.get("cluster", "slurm") not in CLUSTERS:
        raise LongtailError(f"{where}: slurm cluster = {opts['cluster']!r} is not one of {CLUSTERS}",
                            "write cluster: slurm (sbatch), or cluster: local (the same jobs as processes on this machine)")
    for key in ("time_min", "mem_gb", "cpus_per_task", "gpus_per_node"):
        if key in opts and (not isinstance(opts[key], (int, float)) or isinstance(opts[key], bool) or opts[key] <= 0):
            raise LongtailError(f"{where}: slurm {key} = {opts[key]!r} must be a positive number", f"write e.g. {key}: 4")
    if "setup" in opts and not (isinstance(opts["setup"], list) and all(isinstance(x, str) for x in opts["setup"])):
        raise LongtailError(f"{where}: slurm setup must be a list of shell lines",
                            "write e.g. setup: ['source ~/venvs/longtail/bin/activate']")
    if "additional" in opts and not isinstance(opts["additional"], dict):
        raise LongtailError(f"{where}: slurm additional must be a mapping of sbatch options",
                            "write e.g. additional: {exclusive: true}")
    return opts


def check_submitit(cluster: str) -> None:
    """Before any work: submitit importable, and on a cluster sbatch / squeue on PATH."""
    import shutil

    try:
        import submitit  # noqa: F401
    except ImportError:
        raise LongtailError("--launcher slurm needs the submitit package, which is not installed",
                            "pip install 'longtail[cluster]'") from None
    if cluster == "slurm":
        missing = [c for c in ("sbatch", "squeue", "scancel") if shutil.which(c) is None]
        if missing:
            raise LongtailError(f"--launcher slurm: {', '.join(missing)} not found on PATH (this machine is not a Slurm "
                                "login node)", "run the command on the cluster's login node, or try the submission "
                                "here with --slurm cluster=local")


class GridJob:
    """One run of a grid as a submitit job. It resumes from the run folder's checkpoint where
    there is one, so a requeued job (preempted, or timed out: submitit calls :meth:`checkpoint`
    on Slurm's warning signal) and a resubmitted one continue where the last stopped. It writes
    what the bench process would: wall_s.txt, a FAILED record, and the kept copy of a reused base."""

    def __call__(self, cfg: dict, run_dir: str, kept: str | None) -> str:
        from longtail.bench import FAILED, earlier_wall, keep_base, record_failure
        from longtail.engine.trainer import Trainer

        folder = Path(run_dir)
        if (folder / "metrics.json").exists():
            return "finished earlier"
        run = from_dict(RunConfig, cfg)
        if not run.engine.threads and os.environ.get("SLURM_CPUS_PER_TASK"):  # the job's share, not the node's cores
            run = dataclasses.replace(run, engine=dataclasses.replace(run.engine, threads=int(os.environ["SLURM_CPUS_PER_TASK"])))
        resume = (folder / "checkpoint.pt").exists()
        (folder / FAILED).unlink(missing_ok=True)
        t = time.perf_counter()
        try:
            Trainer(run, folder, resume=resume, log=print).run()
        except Exception as e:
            record_failure(folder, e)
            if kept and (folder / "checkpoint.pt").exists():
                keep_base(folder, Path(kept), unfinished=True)
            raise
        wall = time.perf_counter() - t + (earlier_wall(folder) if resume else 0.0)  # with earlier attempts
        (folder / "wall_s.txt").write_text(f"{wall:.1f}\n")
        if kept:
            keep_base(folder, Path(kept))
        return "finished"

    def checkpoint(self, *args, **kwargs):
        """Requeue the same call: it continues from the run's last checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def job_alive(cluster: str, job_id: str) -> bool:
    """Whether the scheduler still holds the job (pending, running, requeued...)."""
    if cluster == "local":  # a local job's id is its process id
        try:
            return Path(f"/proc/{int(job_id)}").exists() and "zombie" not in Path(f"/proc/{int(job_id)}/status").read_text()
        except (OSError, ValueError):
            return False
    p = subprocess.run(["squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True)
    return p.returncode == 0 and p.stdout.strip().split("\n")[0].strip() in LIVE_STATES


class JobBook:
    """``<runs>/.submitit/jobs.json``: the job of each run folder, so a later `longtail bench`
    neither trains nor submits a run whose job is still queued or running, and a resubmitted
    grid makes its new jobs wait for bases still under way."""

    def __init__(self, runs_root: Path):
        self.folder = Path(runs_root) / ".submitit"
        self.path = self.folder / "jobs.json"
        self.jobs = json.loads(self.path.read_text()) if self.path.exists() else {}

    def live(self, run_dir: Path) -> str | None:
        """The run's job id where its job is still held by its scheduler."""
        entry = self.jobs.get(str(run_dir))
        return entry["id"] if entry and job_alive(entry["cluster"], entry["id"]) else None

    def add(self, run_dir: Path, job_id: str, cluster: str) -> None:
        self.jobs[str(run_dir)] = {"id": str(job_id), "cluster": cluster}
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.jobs, indent=1) + "\n")


def run_submitit(todo: list, opts: dict, meta: dict, kept: dict, book: JobBook, wait: bool,
                 base_of, announce, begin, fail, finish, log) -> None:
    """Each run of ``todo`` a job; a run that reuses another depends on its base's job
    (``afterok``: it starts once its base has finished, and is cancelled if the base fails).
    With ``wait`` the bench process follows the jobs until every one has ended and records
    each as it ends; without it, it returns once they are submitted and a later
    ``longtail bench --resume`` collects the rows."""
    import submitit

    from longtail.bench import FAILED

    cluster = opts.get("cluster", "slurm")
    executor = submitit.AutoExecutor(folder=book.folder / "%j", cluster=cluster)
    params = {SLURM_KEYS[k]: v for k, v in opts.items() if k in SLURM_KEYS}
    if params.get("timeout_min") is not None:
        params["timeout_min"] = int(params["timeout_min"])
    jobs, held = {}, {}  # run key -> submitit job (submitted here) / job id (submitted earlier, still held)
    for i, r in enumerate(todo):
        if not announce(i, r):
            continue
        if live := book.live(r.run_dir):
            held[r.key] = live
            log(f"  job {live} (submitted earlier) is still held by the scheduler: not submitted again")
            continue
        b = base_of(r)
        after = jobs[b].job_id if b in jobs else held.get(b)
        if after and cluster != "slurm":  # the local executor has no dependencies: its base first
            _wait_for(jobs[b]) if b in jobs else _wait_until_ended(cluster, after, opts)
            after = None
            if not (next(x for x in todo if x.key == b).run_dir / "metrics.json").exists():
                log(f"  skipped: it starts from {r.reuse} seed {r.seed}, which ended without a result")
                continue
        extra = dict(params.get("slurm_additional_parameters") or {})
        if after:
            extra.update({"dependency": f"afterok:{after}", "kill-on-invalid-dep": "yes"})
        executor.update_parameters(**{**params, "slurm_additional_parameters": extra},
                                   name=f"lt-{meta['suite']}-{r.method}-s{r.seed}")
        resumed = begin(r)
        job = executor.submit(GridJob(), to_dict(r.cfg), str(r.run_dir), str(kept[r.key]) if r.key in kept else None)
        jobs[r.key] = job
        book.add(r.run_dir, job.job_id, cluster)
        log(f"  {'resubmitted' if resumed else 'submitted'} as job {job.job_id}" + (f", after job {after}" if after else "")
            + (" (continues from its checkpoint)" if resumed else ""))
    ids = {r.key: (jobs[r.key].job_id if r.key in jobs else held[r.key]) for r in todo if r.key in jobs or r.key in held}
    if not wait:
        if ids:
            log(f"{len(ids)} job(s) on {cluster}: {', '.join(sorted(set(ids.values()), key=_job_order))}; their logs in "
                f"{book.folder}. `longtail bench {meta['path']} --resume` (any time) records the finished rows and "
                "resubmits the runs whose job ended without one; --wait follows the jobs to the end")
        return
    if ids:
        log(f"waiting for {len(ids)} job(s) on {cluster} (Ctrl-C stops waiting, not the jobs)")
    pending = [r for r in todo if r.key in ids]
    poll = float(opts.get("poll_s", 10))
    while pending:
        for r in list(pending):
            if job_alive(cluster, ids[r.key]) and not (r.key in jobs and cluster == "local" and jobs[r.key].done()):
                continue
            pending.remove(r)
            wall_file = r.run_dir / "wall_s.txt"
            if (r.run_dir / "metrics.json").exists():
                finish(r, float(wall_file.read_text()) if wall_file.exists() else 0.0, False)
                log(f"  job {ids[r.key]}: {r.method} seed {r.seed} finished")
            elif (r.run_dir / FAILED).exists():
                fail(r, None)
            else:
                log(f"  job {ids[r.key]}: {r.method} seed {r.seed} ended without a result (cancelled, killed, or its "
                    f"base failed; log {book.folder / str(ids[r.key])}): --resume resubmits it from its last checkpoint")
        if pending:
            time.sleep(poll)


def _job_order(job_id: str):
    return (len(job_id), job_id)


def _wait_for(job) -> None:
    while not job.done():
        time.sleep(0.5)


def _wait_until_ended(cluster: str, job_id: str, opts: dict) -> None:
    while job_alive(cluster, job_id):
        time.sleep(float(opts.get("poll_s", 10)))
