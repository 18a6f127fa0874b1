"""A real one-node Slurm cluster (Debian's slurm-wlm and munge), configured and started here,
runs a two-stage grid through `longtail bench --launcher slurm`: one job is cancelled mid-run
with scancel, the grid is resubmitted, and every row equals the sequential grid's bit for bit.

It needs root (the daemons) and the Debian packages (CI installs them: .ci/run); elsewhere it
is skipped with the reason."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import write_mnist_folder

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def slurm_cluster(tmp_path_factory, monkeypatch):
    """munged on a private socket and key, slurmctld and slurmd for this host alone (2 CPUs,
    no accounting, no cgroups), SLURM_CONF pointing the client commands at it."""
    if os.geteuid() != 0:
        pytest.skip("a real Slurm cluster needs root to start its daemons (CI runs as root)")
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: apt-get install slurm-wlm munge (.ci/run does, as root)")
    pytest.importorskip("submitit")
    d = tmp_path_factory.mktemp("slurm")
    host = socket.gethostname().split(".")[0]
    (d / "munge").mkdir(mode=0o700)
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = d / "munge" / "sock"
    subprocess.run(["munged", "--force", f"--socket={sock}", f"--key-file={key}", f"--pid-file={d / 'munge' / 'pid'}",
                    f"--log-file={d / 'munge' / 'log'}", f"--seed-file={d / 'munge' / 'seed'}"], check=True)
    for sub in ("state", "spool"):
        (d / sub).mkdir()
    conf = d / "slurm.conf"
    conf.write_text(f"""ClusterName=longtailtest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd.pid'}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmctldLogFile={d / 'slurmctld.log'}
SlurmdLogFile={d / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
KillWait=2
NodeName={host} CPUs={os.cpu_count()} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
""")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    subprocess.run(["slurmctld", "-f", str(conf)], check=True)
    subprocess.run(["slurmd", "-f", str(conf)], check=True)
    try:
        for _ in range(100):  # the node registers
            p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
            if p.returncode == 0 and p.stdout.strip() in ("idle", "mixed"):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the test cluster did not come up: {p.stdout} {p.stderr}\n{(d / 'slurmctld.log').read_text()[-2000:]}")
        yield d
    finally:
        for pidfile in ("slurmd.pid", "slurmctld.pid", "munge/pid"):
            try:
                os.kill(int((d / pidfile).read_text().strip()), 15)
            except (OSError, ValueError):
                pass


def _suite(tmp_path: Path) -> Path:
    """ce (30 epochs of 0.3 s: a cancelled job outlives its 2-4 s of grace, so it is killed mid-run) and cRT reusing it, seed 0."""
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[400] * 10, n_test_per_class=6)
    common = {"data": {"dataset": "mnist", "root": str(root), "imbalance_factor": 10}, "model": {"arch": "resnet8"},
              "engine": {"threads": 1, "progress": False, "checkpoint_share": 0}, "eval": {"plots": False}}
    stage1 = {"method": "ce", "epochs": 30, "batch_size": 32, "optimizer": {"lr": 0.05}}
    (tmp_path / "ce.yaml").write_text(yaml.safe_dump({**common, "stages": [stage1]}))
    (tmp_path / "crt.yaml").write_text(yaml.safe_dump({**common, "stages": [stage1, {"method": "crt", "epochs": 1, "batch_size": 32}]}))
    suite = {"suite": "tiny", "seeds": [0], "slurm": {"cpus_per_task": 1, "time_min": 10, "poll_s": 0.5},
             "methods": {"ce": str(tmp_path / "ce.yaml"), "crt": {"config": str(tmp_path / "crt.yaml"), "reuse": "ce"}}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    return tmp_path / "suite.yaml"


def _version() -> str:
    return subprocess.run(["sinfo", "--version"], capture_output=True, text=True).stdout.strip()


def _squeue_state(job: str) -> str:
    p = subprocess.run(["squeue", "-h", "-t", "all", "-j", job, "-o", "%T"], capture_output=True, text=True)
    return p.stdout.strip()


@pytest.mark.slow
def test_a_grid_on_a_real_slurm_cluster_resumes_a_cancelled_job_bit_exactly(slurm_cluster, tmp_path, capsys):
    from longtail.cli import main
    from longtail.launchers import JobBook

    suite = _suite(tmp_path)
    assert main(["bench", str(suite), "--runs", str(tmp_path / "seq_runs"), "--results", str(tmp_path / "seq")]) == 0
    args = ["bench", str(suite), "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res"), "--launcher", "slurm"]
    capsys.readouterr()
    assert main(args) == 0  # submitted, not waited for
    out = capsys.readouterr().out
    jobs = JobBook(tmp_path / "runs").jobs
    ce_job, crt_job = jobs[str(tmp_path / "runs" / "ce" / "seed0")]["id"], jobs[str(tmp_path / "runs" / "crt" / "seed0")]["id"]
    assert f"submitted as job {crt_job}, after job {ce_job}" in out
    ce_dir = tmp_path / "runs" / "ce" / "seed0"
    deadline = time.time() + 300
    while not (ce_dir / "checkpoint.pt").exists():  # cancelled mid-run: after its first checkpoint
        assert time.time() < deadline and not (ce_dir / "metrics.json").exists(), _squeue_state(ce_job)
        time.sleep(0.05)
    subprocess.run(["scancel", ce_job], check=True)
    while _squeue_state(ce_job) in ("RUNNING", "COMPLETING", "PENDING") or _squeue_state(crt_job) in ("PENDING", "RUNNING"):
        assert time.time() < deadline
        time.sleep(0.2)
    assert not (ce_dir / "metrics.json").exists() and (ce_dir / "checkpoint.pt").exists()
    assert _squeue_state(crt_job) == "CANCELLED"  # its base will never finish: cancelled, not left pending
    # resubmitted: the cancelled run continues from its checkpoint, the dependent after it
    assert main(args + ["--resume", "--wait"]) == 0
    out = capsys.readouterr().out
    with capsys.disabled():  # the CI log's line
        print(f"\nreal Slurm ({_version()}): a cancelled job resubmitted and finished bit-exactly: "
              + "; ".join(ln.strip() for ln in out.splitlines() if "job" in ln))
    assert "resubmitted as job" in out and "(continues from its checkpoint)" in out
    assert "ce seed 0 finished" in out and "crt seed 0 finished" in out
    seq, res = (json.loads((tmp_path / d / "tiny" / "results.json").read_text())["runs"] for d in ("seq", "res"))
    assert [(r["method"], r["seed"]) for r in res] == [("ce", 0), ("crt", 0)]
    for a, b in zip(seq, res):
        assert a["metrics"] == b["metrics"], a["method"]
    # a grid whose jobs have all finished submits nothing more
    assert main(args + ["--resume"]) == 0
    assert "submitted" not in capsys.readouterr().out
