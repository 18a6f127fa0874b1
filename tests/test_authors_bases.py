"""MiSLAS, GCL and RIDE as their authors' code runs them: each loss against a hand computation,
RIDE's experts (shared stem, their own later layers and heads, mean logits), MiSLAS's two
learning rates, and a short run of each that must beat chance."""

import json
import math

import pytest
import torch

from conftest import write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer
from longtail.errors import LongtailError
from longtail.losses.gcl import gcl_loss, gcl_offsets
from longtail.losses.las import label_aware_smoothing_loss, las_smoothing
from longtail.losses.ride import ride_diversity_weights, ride_loss
from longtail.methods import StageContext, make_method
from longtail.models import ExpertHeads, build_model


def _nll(z, c):
    """-log softmax(z)_c on plain floats."""
    return math.log(sum(math.exp(v) for v in z)) - z[c]


def test_label_aware_smoothing_by_hand():
    eps = las_smoothing([100, 10, 1], smooth_head=0.3, smooth_tail=0.1)
    want = [0.3, 0.1 + 0.2 * math.sin(9 * math.pi / 198), 0.1]  # concave: eps_K + (eps_1 - eps_K) sin(pi (n - n_K) / (2 (n_1 - n_K)))
    assert eps.tolist() == pytest.approx(want, abs=1e-6)
    z = [[2.0, 0.5, -1.0], [0.0, 1.0, 0.3]]
    y = [0, 2]
    per = [(1 - want[c]) * _nll(row, c) + want[c] * sum(_nll(row, k) for k in range(3)) / 3 for row, c in zip(z, y)]
    got = label_aware_smoothing_loss(torch.tensor(z), torch.tensor(y), eps)
    assert float(got) == pytest.approx(sum(per) / 2, abs=1e-6)


def test_gcl_loss_by_hand():
    counts = [100, 10, 1]
    o = gcl_offsets(counts)  # log n_max - log n_c
    assert o.tolist() == pytest.approx([0.0, math.log(10), math.log(100)], abs=1e-6)
    cos = [[0.5, 0.2, -0.1]]
    noise = [[0.3, 0.6, 0.9]]
    # stage 1: z_c = cos_c - 0.5 |eps_c| o_c / max o, margin 0, CE(30 z)
    z = [cos[0][c] - 0.5 * noise[0][c] * float(o[c]) / math.log(100) for c in range(3)]
    got = gcl_loss(torch.tensor(cos), torch.tensor([2]), o, torch.tensor(noise), 0.0, 30.0, 0.5)
    assert float(got) == pytest.approx(_nll([30 * v for v in z], 2), abs=1e-5)
    # classifier stage: margin 0.1 on the target, s = 20, focal (1 - p)^1 CE
    zm = [v - (0.1 if c == 1 else 0.0) for c, v in enumerate(z)]
    ce = _nll([20 * v for v in zm], 1)
    got = gcl_loss(torch.tensor(cos), torch.tensor([1]), o, torch.tensor(noise), 0.1, 20.0, 0.5, focal_gamma=1.0)
    assert float(got) == pytest.approx((1 - math.exp(-ce)) * ce, abs=1e-5)


def test_ride_loss_by_hand():
    counts = [30, 3]
    margins = torch.tensor([0.2, 0.5])
    e = [[[0.4, -0.2], [0.1, 0.3]]]  # 1 image, 2 experts, 2 classes (cosines)
    s, lam, y = 10.0, -0.45, 0
    zs = [[s * v for v in ex] for ex in e[0]]
    mean = [(zs[0][k] + zs[1][k]) / 2 for k in range(2)]
    p_mean = [math.exp(v) / sum(math.exp(u) for u in mean) for v in mean]
    total = 0.0
    for z in zs:
        total += _nll([z[0] - s * 0.2, z[1]], y)  # LDAM: s * margin off the target logit
        logq = [v - math.log(sum(math.exp(u) for u in z)) for v in z]
        total += lam * sum(p * (math.log(p) - lq) for p, lq in zip(p_mean, logq))  # KL(mean || expert), T = 1
    got = ride_loss(torch.tensor(e), torch.tensor([y]), margins, s, lam, 1.0)
    assert float(got) == pytest.approx(total, abs=1e-5)
    w = ride_diversity_weights(counts, 0.05)  # C pi f + 1 - f, over its max
    raw = [2 * 30 / 33 * 0.05 + 0.95, 2 * 3 / 33 * 0.05 + 0.95]
    assert w.tolist() == pytest.approx([v / max(raw) for v in raw], abs=1e-6)


def test_ride_experts_share_the_stem_and_average_their_logits():
    torch.manual_seed(0)
    model = build_model("ride_resnet8", 10, 1, "cosine").eval()
    bb = model.backbone
    assert bb.num_experts == 3 and len(bb.layer2s) == 3 and len(bb.layer3s) == 3 and bb.out_features == 48
    assert bb.layer2s[0][0].conv1.weight.shape == (24, 16, 3, 3)  # RIDE's reduced dimensions: 16 -> 24 -> 48
    assert not torch.equal(bb.layer2s[0][0].conv1.weight, bb.layer2s[1][0].conv1.weight)
    x = torch.randn(2, 1, 16, 16)
    fmap = model.features(x)
    assert fmap.shape == (2, 3, 48, 4, 4)
    emb = model.pool(fmap)
    assert isinstance(model.head, ExpertHeads) and len(model.head.heads) == 3
    experts = model.head.experts(emb)
    assert experts.shape == (2, 3, 10)
    assert torch.allclose(experts[:, 1], model.head.heads[1](fmap[:, 1].mean(dim=(2, 3))))
    assert torch.allclose(model(x), experts.mean(dim=1))


def test_methods_need_their_heads():
    ctx = StageContext(torch.tensor([5.0, 2.0]), 2, 1, 1, torch.device("cpu"), build_model("resnet8", 2, 1, "linear"))
    with pytest.raises(LongtailError, match="model.head: cosine"):
        make_method("gcl", ctx).prepare()
    with pytest.raises(LongtailError, match="multi-expert"):
        make_method("ride", ctx).prepare()


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("tiny"), n_train_per_class=[100] * 10, n_test_per_class=10)


RUNS = {
    "mislas": ("resnet8", "linear", "[{method: ce+mixup, epochs: 4, batch_size: 32},"
                                    " {method: mislas, epochs: 2, batch_size: 32, optimizer: {lr: 0.1}}]"),
    "gcl": ("resnet8", "cosine", "[{method: gcl+mixup, epochs: 4, batch_size: 32},"
                                 " {method: gcl+mixup, epochs: 2, batch_size: 32, train: head, sampler: class_balanced,"
                                 " method_args: {margin: 0.1, scale: 20.0, train_cls: true}, optimizer: {lr: 0.01}}]"),
    "ride": ("ride_resnet8", "cosine", "[{method: ride, epochs: 4, batch_size: 32, method_args: {drw_epoch: 3}},"
                                       " {method: ride+h2tf, epochs: 1, batch_size: 32, train: head, sampler: class_balanced}]"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", RUNS)
def test_a_short_run_beats_chance(name, tiny_root, tmp_path):
    arch, head, stages = RUNS[name]
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={tiny_root}", "data.imbalance_factor=10", f"model.arch={arch}",
                             f"model.head={head}", "engine.progress=false", "eval.plots=false", f"stages={stages}"])
    Trainer(cfg, tmp_path, log=lambda m: None).run()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["balanced"] > 30.0, m["balanced"]  # chance is 10


def test_mislas_trains_its_classifier_at_lr_factor_and_the_scales_at_lr():
    model = build_model("resnet8", 3, 1)
    ctx = StageContext(torch.tensor([30.0, 10.0, 3.0]), 3, 1, 1, torch.device("cpu"), model, True)
    method = make_method("mislas", ctx, {"lr_factor": 0.2})
    method.prepare()
    groups = Trainer._param_groups([p for p in model.head.parameters() if p.requires_grad], method, decay_1d=True)
    by_scale = {g["lr_scale"]: {id(p) for p in g["params"]} for g in groups}
    assert by_scale[0.2] == {id(p) for p in model.head.base.parameters()}
    assert by_scale[1.0] == {id(model.head.scales)}


@pytest.mark.parametrize("method", ["lws", "tau_norm", "ipdpp"])
def test_one_head_methods_are_refused_on_expert_heads_before_any_work(method):
    """LWS, τ-norm and IP-DPP work on one classifier head: on RIDE's expert heads the config
    check names the stage and the fix instead of an AttributeError after stage 1."""
    from longtail.config import load_config
    from longtail.engine.trainer import check_run
    from longtail.errors import LongtailError

    cfg = load_config(None, ["model.arch=ride_resnet8", "model.head=cosine",
                             f"stages=[{{method: ride, epochs: 1}}, {{method: {method}, epochs: 1}}]"])
    with pytest.raises(LongtailError, match=f"{method} cannot run on ride_resnet8's expert heads") as e:
        check_run(cfg)
    assert "crt, linear_probe" in e.value.fix
