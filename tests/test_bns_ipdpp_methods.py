"""BNS and IP-DPP as engine methods on a tiny MNIST-format set."""

import csv
import json

import numpy as np
import pytest
import torch

from conftest import die_after_epochs, write_mnist_folder
from longtail.config import load_config
from longtail.engine import trainer as trainer_mod
from longtail.engine.trainer import Trainer
from longtail.methods.ipdpp import draw_subset


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("tiny"), n_train_per_class=[60] * 10, n_test_per_class=6)


def _cfg(root, stages):
    return load_config(None, ["data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10", "model.arch=resnet8",
                              "engine.progress=false", "eval.plots=false", f"stages={stages}"])


@pytest.mark.parametrize("form", ["code", "paper"])
def test_bns_then_linear_probe(tiny_root, tmp_path, form):
    cfg = _cfg(tiny_root, "[{method: bns, epochs: 2, batch_size: 40, method_args: {form: %s}, optimizer: {name: adamw, lr: 0.002, weight_decay: 0.05}},"
                          " {method: linear_probe, epochs: 2, batch_size: 40}]" % form)
    Trainer(cfg, tmp_path, log=lambda m: None).run()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert [s["method"] for s in m["stages"]] == ["bns", "linear_probe"]
    assert m["overall"] > 15  # above chance after a short representation stage + probe


def test_draw_subset_cuts_large_classes_to_k():
    labels = np.repeat(np.arange(4), [50, 20, 8, 3])
    p = np.random.default_rng(0).uniform(0.05, 1, len(labels))
    for kernel in ("ipdpp", "random", "quality_diversity"):
        feats = np.random.default_rng(1).normal(size=(len(labels), 16))
        sub = draw_subset(labels, 10, np.random.default_rng(2), kernel, p, "n2", feats)
        assert np.bincount(labels[sub]).tolist() == [10, 10, 8, 3]
        assert len(np.unique(sub)) == len(sub)


def test_ipdpp_stage_redraws_and_resumes_bit_exact(tiny_root, tmp_path, monkeypatch):
    stages = "[{method: ce, epochs: 1, batch_size: 32}, {method: ipdpp, epochs: 4, batch_size: 16, method_args: {k: 12, redraw_every: 2}, optimizer: {name: adamw, lr: 0.001}}]"
    ref = tmp_path / "ref"
    pools = []
    real_epoch = trainer_mod.Trainer._train_epoch

    def spy(self, model, method, opt, rs, epoch):
        row = real_epoch(self, model, method, opt, rs, epoch)
        if rs.index == 1:
            pools.append(method.sample_pool().clone())
        return row

    monkeypatch.setattr(trainer_mod.Trainer, "_train_epoch", spy)
    Trainer(_cfg(tiny_root, stages), ref, log=lambda m: None).run()
    monkeypatch.setattr(trainer_mod.Trainer, "_train_epoch", real_epoch)
    assert len(pools) == 4
    # drawn before epoch 0 and redrawn before epoch r-1 = 1 (as the authors' code), not before the last
    assert not torch.equal(pools[0], pools[1]) and torch.equal(pools[1], pools[2]) and torch.equal(pools[2], pools[3])
    counts = json.loads((ref / "metrics.json").read_text())["class_counts"]
    labels = Trainer(_cfg(tiny_root, stages), tmp_path / "x", log=lambda m: None).train_set.labels
    assert torch.bincount(labels[pools[0]], minlength=10).tolist() == [min(c, 12) for c in counts]
    with open(ref / "history.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["stage"] == "stage2"]
    assert [int(r["images"]) for r in rows] == [len(pools[0])] * 4  # an epoch is one pass over the subset

    restore = die_after_epochs(monkeypatch, 3)  # after stage 1 and two IP-DPP epochs: between redraws
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(tiny_root, stages), tmp_path / "b", log=lambda m: None).run()
    restore()
    Trainer(_cfg(tiny_root, stages), tmp_path / "b", resume=True, log=lambda m: None).run()
    a = torch.load(ref / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stage_augmentation_reaches_both_bns_views(tiny_root, tmp_path, monkeypatch):
    """A BNS stage with SimCLR views, then a probe without augmentation: the engine augments
    every batch and both views of stage 1 with the stage's own policy, and nothing after."""
    seen = []
    real = trainer_mod.augment

    def spy(x, cfg, gen, size=None):
        seen.append(cfg.policy)
        return real(x, cfg, gen, size)

    monkeypatch.setattr(trainer_mod, "augment", spy)
    cfg = _cfg(tiny_root, "[{method: bns, epochs: 1, batch_size: 40, augment: {policy: simclr, strength: 2},"
                          " optimizer: {name: adamw, lr: 0.002}}, {method: linear_probe, epochs: 1, batch_size: 40, augment: false}]")
    Trainer(cfg, tmp_path, log=lambda m: None).run()
    n = sum(json.loads((tmp_path / "metrics.json").read_text())["class_counts"])
    steps = -(-n // 40) - (n % 40 == 1)  # a last batch of one image is dropped
    assert seen == ["simclr"] * (2 * steps)  # both views of every stage-1 batch, nothing in stage 2


def test_linear_probe_per_class_draws_the_authors_balanced_subset():
    """``per_class: n``: classes above n cut to exactly n, smaller ones whole, the same draw for
    the same seed (so a resumed stage trains on the same images), another for another seed."""
    from longtail.methods import StageContext, make_method

    labels = torch.from_numpy(np.repeat(np.arange(4), [50, 20, 8, 3]))

    def subset(seed):
        ctx = StageContext(torch.tensor([50.0, 20, 8, 3]), 4, 1, 1, torch.device("cpu"), torch.nn.Linear(2, 4), True,
                           log=lambda m: None, seed=seed, stage_index=1, train_labels=labels)
        probe = make_method("linear_probe", ctx, {"per_class": 10})
        probe.prepare()
        return probe.sample_pool()

    a = subset(0)
    assert np.bincount(labels[a].numpy()).tolist() == [10, 10, 8, 3] and len(set(a.tolist())) == len(a)
    assert torch.equal(a, subset(0)) and not torch.equal(a, subset(1))
    ctx = StageContext(torch.tensor([50.0, 20, 8, 3]), 4, 1, 1, torch.device("cpu"), torch.nn.Linear(2, 4), True)
    plain = make_method("linear_probe", ctx)
    plain.prepare()
    assert plain.sample_pool() is None  # the default: every training image


def test_epoch_estimate_times_the_methods_own_step_and_leaves_the_run_unchanged(tiny_root, tmp_path, monkeypatch):
    """`longtail train`'s estimate runs the first stage's real steps (BNS: two augmented views a
    step) on a throwaway model; the run trained after it is bit-identical to one without it."""
    from longtail.engine.cost import epoch_seconds, no_estimate

    stages = ("[{method: bns, epochs: 1, batch_size: 40, optimizer: {name: adamw, lr: 0.002}},"
              " {method: linear_probe, epochs: 1, batch_size: 40}]")
    Trainer(_cfg(tiny_root, stages), tmp_path / "plain", log=lambda m: None).run()

    views = []
    real_prep = trainer_mod.Trainer._prep
    monkeypatch.setattr(trainer_mod.Trainer, "_prep", lambda self, x, gen, aug=None: views.append(len(x)) or real_prep(self, x, gen, aug))
    t = Trainer(_cfg(tiny_root, stages), tmp_path / "estimated", log=lambda m: None)
    assert no_estimate(t) is None
    seconds = epoch_seconds(t, steps=3)
    assert seconds > 0
    assert views == [40] * 8  # 1 untimed + 3 timed steps, two views each
    # with counts: one more step, counted (ops, FLOPs, steps an epoch); the run after it still unchanged
    counts = {}
    assert epoch_seconds(t, steps=1, counts=counts) > 0 and views[8:] == [40] * 6
    assert counts["ops"] > 100 and counts["flops"] > 0 and counts["steps"] == t._steps_per_epoch(t.stages[0])
    monkeypatch.setattr(trainer_mod.Trainer, "_prep", real_prep)
    t.run()
    a = torch.load(tmp_path / "plain" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "estimated" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)

    cfg = _cfg(tiny_root, stages)
    cfg.engine.compile = True  # its first steps would time the compiler, not the step
    compiled = Trainer(cfg, tmp_path / "compiled", log=lambda m: None)
    assert "compile" in no_estimate(compiled) and epoch_seconds(compiled) is None
