"""Two CPU processes on gloo (as ``torchrun --nproc_per_node 2`` launches them) against one
process with the same global batch: disjoint shards, every test image predicted exactly once,
and the same weights after BNS, CE+PIF (class means over the global batch) and cRT+H2TF steps (float tolerance 1e-4).

BatchNorm statistics are frozen in the compared stages (``backbone_bn: frozen``) and
augmentation is off: per-rank BN batch statistics (PyTorch's SyncBatchNorm needs a GPU) and
per-rank crop draws are the two things that legitimately differ between the layouts."""

import json
import multiprocessing as mp
import os
import socket

import pytest
import torch

from conftest import die_after_epochs, write_mnist_folder
from longtail.config import load_config
from longtail.engine.distributed import DistInfo, shard, shutdown
from longtail.engine.trainer import Trainer

STAGES = ("[{method: bns, epochs: 1, batch_size: 40, backbone_bn: frozen, augment: false, optimizer: {name: adamw, lr: 0.001}},"
          " {method: ce+pif, epochs: 1, batch_size: 40, backbone_bn: frozen, augment: false, optimizer: {lr: 0.05}},"
          " {method: crt+h2tf, epochs: 1, batch_size: 40, augment: false}]")


def _cfg(root):
    return load_config(None, ["data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10", "model.arch=resnet8",
                              "engine.progress=false", "eval.plots=false", "engine.threads=1", f"stages={STAGES}"])


def _worker(rank, world, port, root, out, report):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    trainer = Trainer(_cfg(root), out, log=lambda m: None)
    logits, labels = trainer.predict(trainer._build_model(), trainer.splits.test)
    trainer.run()
    with open(f"{report}.{rank}", "w") as f:
        json.dump({"n_pred": len(logits), "labels": labels.tolist(), "world": trainer.dist.world}, f)
    shutdown(trainer.dist)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shards_are_disjoint_and_cover_the_draw():
    order = torch.randperm(103)
    parts = [shard(order, DistInfo(r, 4)) for r in range(4)]
    assert len({len(p) for p in parts}) == 1  # equal steps on every rank
    covered = torch.cat(parts)
    assert set(covered.tolist()) == set(order.tolist()) and len(covered) == 104  # one wrap-around pad
    even = [shard(order[:100], DistInfo(r, 4)) for r in range(4)]
    assert sorted(torch.cat(even).tolist()) == sorted(order[:100].tolist())  # disjoint, exact cover


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[60] * 10, n_test_per_class=[5, 6, 5, 5, 5, 5, 5, 5, 5, 5])
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, str(root), str(tmp_path / "ddp"), str(tmp_path / "report"))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    reports = [json.loads((tmp_path / f"report.{r}").read_text()) for r in range(2)]
    assert all(r["world"] == 2 and r["n_pred"] == 51 for r in reports)  # 51 test images: none dropped or doubled
    single = Trainer(_cfg(root), tmp_path / "one", log=lambda m: None)
    assert reports[0]["labels"] == single.splits.test.labels.tolist()  # gathered back in dataset order
    single.run()
    a = torch.load(tmp_path / "one" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "model.pt", weights_only=True)
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < 1e-4, worst
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["stages"][-1]["method"] == "crt+h2tf"


class _Killed(Exception):
    pass


def _worker_killed(rank, world, port, root, out, kill_after, resume):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    if kill_after is not None:
        die_after_epochs(None, kill_after, _Killed)
    trainer = Trainer(_cfg(root), out, resume=resume, log=lambda m: None)
    try:
        trainer.run()
    except _Killed:
        os._exit(3)  # like a killed job: no clean shutdown
    shutdown(trainer.dist)


def _launch(target, args_for_rank):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=target, args=args_for_rank(r)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    return [p.exitcode for p in procs]


@pytest.mark.slow
def test_distributed_resume_is_bit_exact(tmp_path):
    """Two processes stopped after two of three stages' epochs, relaunched with --resume, end
    with the weights of an uninterrupted two-process run, bit for bit."""
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[60] * 10, n_test_per_class=4)
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    port = _free_port()
    assert _launch(_worker_killed, lambda r: (r, 2, port, str(root), str(ref), None, False)) == [0, 0]
    port = _free_port()
    assert _launch(_worker_killed, lambda r: (r, 2, port, str(root), str(cut), 2, False)) == [3, 3]
    port = _free_port()
    assert _launch(_worker_killed, lambda r: (r, 2, port, str(root), str(cut), None, True)) == [0, 0]
    a = torch.load(ref / "model.pt", weights_only=True)
    b = torch.load(cut / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
