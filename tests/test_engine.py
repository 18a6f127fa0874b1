"""The engine on a tiny MNIST-format set: two stages, resume, NaN guard, run-folder lock."""

import json
import os

import pytest
import torch

from conftest import die_after_epochs, write_mnist_folder
from longtail.config import load_config
from longtail.engine.checkpoint import load_checkpoint
from longtail.engine.runtime import RunLock
from longtail.engine.trainer import Trainer
from longtail.errors import LongtailError


def tiny_cfg(root, *extra):
    return load_config(None, [
        "data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10", "model.arch=resnet8",
        "engine.threads=2", "engine.progress=false", "eval.plots=false",
        "stages=[{method: ce, epochs: 3, batch_size: 32, optimizer: {lr: 0.05}}, {method: crt, epochs: 2, batch_size: 32}]",
        *extra,
    ])


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("tiny"), n_train_per_class=[60] * 10, n_test_per_class=10)


@pytest.fixture(scope="module")
def reference_run(tiny_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    Trainer(tiny_cfg(tiny_root), out, log=lambda m: None).run()
    return out


class Killed(Exception):
    pass


@pytest.mark.parametrize("kill_after", [1, 3, 4])
def test_resume_is_bit_exact(tiny_root, reference_run, tmp_path, monkeypatch, kill_after):
    """Stop the run after ``kill_after`` epochs (inside stage 1, at the stage boundary, inside
    stage 2), resume in a new Trainer, and compare every weight to the uninterrupted run."""
    restore = die_after_epochs(monkeypatch, kill_after, Killed)
    with pytest.raises(Killed):
        Trainer(tiny_cfg(tiny_root), tmp_path, log=lambda m: None).run()
    restore()
    with pytest.raises(LongtailError, match="--resume"):
        Trainer(tiny_cfg(tiny_root), tmp_path, log=lambda m: None).run()
    before = load_checkpoint(tmp_path / "checkpoint.pt")["wall_s"]
    assert before > 0
    Trainer(tiny_cfg(tiny_root), tmp_path, resume=True, log=lambda m: None).run()
    ran = json.loads((tmp_path / "metrics.json").read_text())["run"]
    # the run's time counts the killed process's epochs too, not only the resumed ones
    assert ran["wall_s"] == pytest.approx(before + ran["wall_s_this_process"], abs=0.1)
    a = torch.load(reference_run / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "model.pt", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ma = json.loads((reference_run / "metrics.json").read_text())
    mb = json.loads((tmp_path / "metrics.json").read_text())
    assert ma["per_class"] == mb["per_class"]
    assert len(mb["stages"]) == 2


def test_run_outputs_and_frozen_backbone(reference_run):
    m = json.loads((reference_run / "metrics.json").read_text())
    for key in ("overall", "many", "medium", "few", "ece", "per_class", "class_counts"):
        assert key in m
    assert m["class_counts"] == [60, 46, 35, 27, 21, 16, 12, 10, 7, 6]
    hist = (reference_run / "history.csv").read_text().splitlines()
    assert len(hist) == 1 + 5
    assert m["overall"] > 30  # the bars make the task easy: far above chance (10%)


def test_crt_keeps_backbone_and_trains_only_head(tiny_root, reference_run, tmp_path):
    """Stage 1 alone (same seed) ends where the two-stage run's stage 2 starts; after cRT the
    backbone (weights and BN statistics) is unchanged and the head is new."""
    cfg1 = tiny_cfg(tiny_root, "stages=[{method: ce, epochs: 3, batch_size: 32, optimizer: {lr: 0.05}}]")
    Trainer(cfg1, tmp_path, log=lambda m: None).run()
    before = torch.load(tmp_path / "model.pt", weights_only=True)
    after = torch.load(reference_run / "model.pt", weights_only=True)
    for k in before:
        if k.startswith("backbone."):
            assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["head.weight"], after["head.weight"])


def test_nan_loss_stops_with_message(tiny_root, tmp_path, monkeypatch):
    from longtail.methods.base import Method

    real = Method.loss
    calls = {"n": 0}

    def poisoned(self, logits, batch):
        calls["n"] += 1
        out = real(self, logits, batch)
        return out * float("nan") if calls["n"] == 12 else out

    monkeypatch.setattr(Method, "loss", poisoned)
    with pytest.raises(LongtailError) as e:
        Trainer(tiny_cfg(tiny_root), tmp_path, log=lambda m: None).run()
    msg = str(e.value)
    assert "loss is nan" in msg and "epoch 2" in msg and "checkpoint.pt" in msg


def test_run_lock_refuses_live_owner_and_takes_over_stale(tmp_path):
    with RunLock(tmp_path):
        (tmp_path / ".lock").write_text("1")  # pid 1 is alive
        with pytest.raises(LongtailError, match="in use by process 1"):
            RunLock(tmp_path).acquire()
        (tmp_path / ".lock").write_text(str(os.getpid()))
    (tmp_path / ".lock").write_text("999999999")  # no such process
    lock = RunLock(tmp_path).acquire()
    assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    lock.release()


def test_run_lock_from_another_host(tmp_path, monkeypatch):
    """On a shared file system: another host's lock is refused with the host named, unless its
    Slurm job is this one (requeued on another node) or has ended."""
    import longtail.launchers

    (tmp_path / ".lock").write_text("999999999 node7 ")
    with pytest.raises(LongtailError, match="in use by process 999999999 on node7"):
        RunLock(tmp_path).acquire()
    (tmp_path / ".lock").write_text("999999999 node7 41")
    monkeypatch.setattr(longtail.launchers, "job_alive", lambda cluster, job: job == "41")
    with pytest.raises(LongtailError, match="on node7"):
        RunLock(tmp_path).acquire()
    monkeypatch.setenv("SLURM_JOB_ID", "41")  # the same job, requeued here
    RunLock(tmp_path).acquire().release()
    monkeypatch.delenv("SLURM_JOB_ID")
    (tmp_path / ".lock").write_text("999999999 node7 40")  # a job the scheduler no longer holds
    RunLock(tmp_path).acquire().release()


def test_eval_reproduces_the_run_metrics(reference_run, tmp_path, capsys):
    from longtail.cli import main

    assert main(["eval", str(reference_run), "--json", str(tmp_path / "m.json")]) == 0
    again = json.loads((tmp_path / "m.json").read_text())
    saved = json.loads((reference_run / "metrics.json").read_text())
    assert again["per_class"] == saved["per_class"] and again["ece"] == pytest.approx(saved["ece"])
    assert "| stage2 | crt |" in capsys.readouterr().out


def test_nan_gradient_stops_with_message(tiny_root, tmp_path, monkeypatch):
    from longtail.methods.base import Method

    real = Method.loss

    def poisoned(self, logits, batch):
        if logits.requires_grad:
            logits.register_hook(lambda g: g * float("nan"))  # a finite loss whose gradient is not
        return real(self, logits, batch)

    monkeypatch.setattr(Method, "loss", poisoned)
    with pytest.raises(LongtailError) as e:
        Trainer(tiny_cfg(tiny_root), tmp_path, log=lambda m: None).run()
    assert "gradient norm is nan" in str(e.value) and "step 1" in str(e.value)


def test_decay_1d_false_exempts_biases_and_norms_from_weight_decay(tiny_root, tmp_path, monkeypatch):
    """``optimizer.decay_1d: false`` (timm's add_weight_decay, the BNS code): two groups, every
    1-D parameter (biases, BatchNorm scales and shifts) in the one with weight decay 0."""
    made = []
    real = torch.optim.AdamW

    def spy(params, **kw):
        opt = real(params, **kw)
        made.append(opt)
        return opt

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    cfg = tiny_cfg(tiny_root, "stages=[{method: ce, epochs: 1, batch_size: 32, optimizer: {name: adamw, lr: 0.001, weight_decay: 0.05, decay_1d: false}}]")
    Trainer(cfg, tmp_path, log=lambda m: None).run()
    decay, no_decay = made[0].param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert len(no_decay["params"]) > 0


def test_checkpoint_cadence_and_resume_from_an_older_checkpoint(tiny_root, reference_run, tmp_path, monkeypatch):
    """engine.checkpoint_every: 2 saves after epochs 2 and 3 (the end of stage 1) and the
    stage's end only; a run killed in epoch 2 of stage 2 resumes from the stage boundary and
    still ends bit for bit where the uninterrupted run does."""
    from longtail.engine import checkpoint as ckpt

    saved = []
    real_save = ckpt.save_checkpoint
    monkeypatch.setattr(ckpt, "save_checkpoint", lambda state, path: (saved.append((state["stage"], state["epoch"])), real_save(state, path))[1])
    restore = die_after_epochs(monkeypatch, 4, Killed)
    with pytest.raises(Killed):
        Trainer(tiny_cfg(tiny_root, "engine.checkpoint_every=2", "engine.checkpoint_share=0"), tmp_path, log=lambda m: None).run()
    assert saved == [(0, 2), (0, 3), (1, 0)]  # stage 2's epoch 1 was not saved
    restore()
    Trainer(tiny_cfg(tiny_root, "engine.checkpoint_every=2", "engine.checkpoint_share=0"), tmp_path, resume=True, log=lambda m: None).run()
    assert saved[3:] == [(1, 2), (2, 0)]
    a = torch.load(reference_run / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(LongtailError, match="checkpoint_every"):
        tiny_cfg(tiny_root, "engine.checkpoint_every=-1")


def test_checkpoint_share_thins_per_epoch_saves_but_never_a_stage_end(tiny_root, tmp_path):
    """A save that took more than checkpoint_share of the time since the last one skips
    checkpoint_every's save; the stage's last epoch and checkpoint_minutes always save; 0 turns
    the thinning off."""
    import time

    tr = Trainer(tiny_cfg(tiny_root), tmp_path, log=lambda m: None)
    tr._save_seconds, tr._last_save = 0.5, time.monotonic() - 2.0  # 0.5 s to save, 2 s of training since
    assert not tr._checkpoint_due(1, 3)  # 0.5 > 0.05 x 2
    assert tr._checkpoint_due(3, 3)  # the stage's end
    tr._save_seconds = 0.05
    assert tr._checkpoint_due(1, 3)  # 0.05 s <= 0.05 x 2 s: cheap enough
    tr = Trainer(tiny_cfg(tiny_root, "engine.checkpoint_share=0"), tmp_path, log=lambda m: None)
    tr._save_seconds, tr._last_save = 10.0, time.monotonic()
    assert tr._checkpoint_due(1, 3)
    tr = Trainer(tiny_cfg(tiny_root, "engine.checkpoint_minutes=0.01"), tmp_path, log=lambda m: None)
    tr._save_seconds, tr._last_save = 10.0, time.monotonic() - 1.0
    assert tr._checkpoint_due(1, 3)  # by time, however long saving takes


def test_drop_last_and_base_batch(tiny_root, tmp_path):
    """drop_last: every step a full batch (the epoch's images a multiple of the batch);
    optimizer.base_batch: the stage trains at lr x batch / base_batch, and the log says so."""
    lines = []
    cfg = tiny_cfg(tiny_root, "stages=[{method: ce, epochs: 1, batch_size: 64, drop_last: true, "
                              "optimizer: {lr: 0.05, base_batch: 32}, schedule: {name: constant}}]")
    tr = Trainer(cfg, tmp_path, log=lines.append)
    n = len(tr.train_set)
    assert n % 64  # the data leave a short last batch to drop
    tr.run()
    row = tr.state.history[0]
    assert row["images"] == n // 64 * 64
    assert row["lr"] == pytest.approx(0.1)
    assert any("lr 0.1 = 0.05 x batch 64 / base_batch 32" in ln for ln in lines)
    plain = Trainer(tiny_cfg(tiny_root, "stages=[{method: ce, epochs: 1, batch_size: 64}]"), tmp_path / "b", log=lambda m: None)
    plain.run()
    assert plain.state.history[0]["images"] == n


def test_cuda_graphs_need_compile_and_a_gpu(tiny_root, tmp_path):
    with pytest.raises(LongtailError, match="engine.compile: true"):
        tiny_cfg(tiny_root, "engine.cuda_graphs=true")
    lines = []
    tr = Trainer(tiny_cfg(tiny_root, "engine.cuda_graphs=true", "engine.compile=true"), tmp_path, log=lines.append)
    assert not tr.graphs and any("cuda_graphs needs a CUDA device" in ln for ln in lines)


def test_a_stage_no_longer_than_its_warm_up_is_named(tiny_root, tmp_path):
    lines = []
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={tiny_root}", "data.imbalance_factor=10", "model.arch=resnet8",
                             "engine.progress=false", "eval.plots=false",
                             "stages=[{method: ce, epochs: 1, batch_size: 32, schedule: {warmup_epochs: 1}}]"])
    Trainer(cfg, tmp_path, log=lines.append).run()
    assert any("lasts 1 epoch(s), no longer than its 1 warm-up" in ln for ln in lines)
