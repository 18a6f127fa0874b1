"""H2TF: exactly ⌊ρC⌋ channels of the tail-drawn samples replaced, labels kept (a full
``ce → crt+h2tf`` run is in test_pif.py with the other fusion pipelines)."""

import pytest
import torch

from longtail.methods import Batch, StageContext, make_method
from longtail.methods.pih2t import H2TF, fused_channel_count, head_to_tail_fuse
from longtail.models import build_model


@pytest.mark.parametrize("ratio,expected", [(0.1, 6), (0.25, 16), (0.5, 32), (0.7, 44), (0.0, 0), (1.0, 64)])
def test_channel_count_is_floor(ratio, expected):
    assert fused_channel_count(64, ratio) == expected


def test_fusion_replaces_exactly_the_chosen_channels():
    ft, fh = torch.randn(4, 64, 3, 3), torch.randn(4, 64, 3, 3)
    ch = torch.randperm(64)[:16]
    out = head_to_tail_fuse(ft, fh, ch)
    taken = torch.zeros(64, dtype=torch.bool)
    taken[ch] = True
    assert torch.equal(out[:, taken], fh[:, taken]) and torch.equal(out[:, ~taken], ft[:, ~taken])
    assert not torch.equal(out, ft)  # inputs untouched, output new


def test_plugin_fuses_tail_batch_with_head_batch_and_keeps_labels():
    torch.manual_seed(0)
    model = build_model("resnet8", 5, 1).train()  # the hook is inert in eval mode
    ctx = StageContext(torch.tensor([50.0, 20, 10, 5, 2]), 5, 1, 1, torch.device("cpu"), model, True)
    method = H2TF(ctx, make_method("crt", ctx), ratio=0.25)
    assert method.extra_samplers == {"head": "instance"}
    xt, xh = torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8)
    yt = torch.tensor([4, 4, 3, 2, 1, 0])
    batch = Batch(xt, yt, torch.arange(6), {"head": Batch(xh, torch.zeros(6, dtype=torch.long), torch.arange(6))})
    ft, fh = model.features(xt), model.features(xh)
    fused = method.transform_features(ft, batch)
    from_head = [(fused[:, c] == fh[:, c]).all().item() and not (fused[:, c] == ft[:, c]).all().item() for c in range(64)]
    from_tail = [(fused[:, c] == ft[:, c]).all().item() for c in range(64)]
    assert sum(from_head) == 16 and sum(from_tail) == 48
    assert torch.equal(batch.y, yt)  # the loss uses the tail labels
    loss = method.loss(model.head(model.pool(fused)), batch)
    assert torch.isfinite(loss)


def test_h2t_stage_runs_as_the_authors_code(tmp_path, monkeypatch):
    """configs/fashion_mnist_lt/ce_h2t.yaml on a tiny set: the lr of every step against H2T's
    adjust_learning_rate (train_stage1.py: multistep with 5 warm-up epochs; train_stage2.py:
    lr_factor x cosine, once per epoch), the stage-1 classifier kept, BatchNorm statistics
    updating under a frozen backbone, class-balanced labelled batches and instance donors."""
    import math
    from pathlib import Path

    from conftest import write_mnist_folder
    from longtail.config import load_config
    from longtail.engine.trainer import Trainer

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[60] * 10)
    cfg = load_config(Path(__file__).parents[1] / "configs/fashion_mnist_lt/ce_h2t.yaml", [
        "data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10", "model.arch=resnet8",
        "stages.h2t_stage1.epochs=7", "stages.h2t_stage1.schedule.milestones=[5, 6]",
        "engine.progress=false", "eval.plots=false"])
    st1, st2 = cfg.stages
    assert (st2.method, st2.sampler, st2.train, st2.reinit_head, st2.backbone_bn) == ("crt+h2tf", "class_balanced", "head", False, "train")
    assert (st2.optimizer.lr, st2.optimizer.weight_decay, st2.epochs, st2.batch_size, st2.method_args["h2tf"]["ratio"]) == (0.02, 5e-4, 10, 128, 0.25)
    lrs, at_setup = [], []
    real_step = torch.optim.SGD.step

    def step(opt, *a, **k):
        lrs.append([g["lr"] for g in opt.param_groups])
        return real_step(opt, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    trainer = Trainer(cfg, tmp_path / "run", log=lambda m: None)
    real_setup = trainer._setup_stage

    def setup(model, rs):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        out = real_setup(model, rs)
        at_setup.append((before, {k: v.clone() for k, v in model.state_dict().items()}))
        return out

    trainer._setup_stage = setup
    trainer.run()
    steps = math.ceil(len(trainer.train_set) / 128)
    assert len(lrs) == 7 * steps + 10 * steps
    # stage 1: lr * (e + 1) / 5 in the first five epochs, then x0.1 / x0.01 at the milestones
    want1 = [0.1 * (e + 1) / 5 if e < 5 else 0.1 * 0.1 ** (1 if e < 6 else 2) for e in range(7)]
    # stage 2: lr_factor * (lr_min + 0.5 (lr_max - lr_min)(1 + cos(epoch / num_epochs * pi)))
    want2 = [0.2 * 0.5 * 0.1 * (1 + math.cos(e / 10 * 3.1415926535)) for e in range(10)]
    got = [g[0] for g in lrs]
    for i, want in enumerate([w for w in want1 for _ in range(steps)] + [w for w in want2 for _ in range(steps)]):
        assert got[i] == pytest.approx(want, rel=1e-9, abs=1e-12), (i, got[i], want)
    before, after = at_setup[1]
    assert all(torch.equal(before[k], after[k]) for k in before)  # the stage-1 classifier is kept
    final = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    conv = [k for k in final if k.startswith("backbone") and k.endswith("weight") and final[k].ndim == 4]
    bn = [k for k in final if k.endswith("running_mean")]
    assert conv and all(torch.equal(final[k], after[k]) for k in conv)  # the backbone is frozen ...
    assert bn and any(not torch.equal(final[k], after[k]) for k in bn)  # ... its BatchNorm statistics move
    assert not torch.equal(final["head.weight"], after["head.weight"])
