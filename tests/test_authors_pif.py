"""PIF in its authors' form (H2T repository, commit 3dafa70, ``ResNet_fe.feature_tuning``): the
layer against the sketch's own reshape-and-Conv1d code and a hand computation, channel
equivariance, the exact fold into a linear head, and a pipeline whose classifier stage fuses
the layer's output and whose predict / export deploy the base architecture."""

import json

import pytest
import torch
import torch.nn as nn

from conftest import write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer
from longtail.errors import LongtailError
from longtail.methods import Batch, StageContext, make_method
from longtail.methods.pih2t import H2TF, PIF
from longtail.models import EquivariantPIF, build_model


def _sketch(layer: EquivariantPIF, out: torch.Tensor) -> torch.Tensor:
    """The authors' forward, line for line (models/resnet_cifar.py, ResNet_fe.forward, #for PIF)."""
    bs, dim, w, h = out.shape
    out_mean = out.mean(dim=1, keepdims=True)
    out_hat = torch.stack((out, out - out_mean), dim=2)
    out_hat = out_hat.reshape(bs * dim, -1, w * h)
    out_hat = layer.conv1d(out_hat)
    return out_hat.reshape(bs, dim, w, h)


def _set(layer, weights, biases):
    with torch.no_grad():
        for conv, w, b in zip(layer.conv1d, weights, biases):
            conv.weight.copy_(torch.tensor(w, dtype=torch.float32)[:, :, None])
            conv.bias.copy_(torch.tensor(b, dtype=torch.float32))


def test_layer_matches_a_hand_computation_and_the_authors_code():
    layer = EquivariantPIF()
    # a = 2 on x_c, b = -1 on (x_c - m), bias 0.5: y_c = 2 x_c - (x_c - m) + 0.5 = x_c + m + 0.5
    _set(layer, [[[2, -1], [0, 0], [0, 0], [0, 0]], [[1, 0, 0, 0], [0, 0, 0, 0]], [[1, 0]]],
         [[0, 0, 0, 0], [0, 0], [0.5]])
    x = torch.tensor([1.0, 3.0]).view(1, 2, 1, 1)  # two channels at one position: m = 2
    assert layer(x).flatten().tolist() == [3.5, 5.5]
    torch.manual_seed(0)
    layer = EquivariantPIF()  # PyTorch's default Conv1d initialisation, as the sketch leaves it
    x = torch.randn(3, 8, 4, 5)
    assert torch.allclose(layer(x), _sketch(layer, x), atol=1e-6)
    assert sum(p.numel() for p in layer.parameters()) == 25


def test_permuting_channels_permutes_the_output():
    torch.manual_seed(1)
    layer = EquivariantPIF()
    x = torch.randn(2, 6, 3, 3)
    perm = torch.randperm(6)
    assert torch.allclose(layer(x[:, perm]), layer(x)[:, perm], atol=1e-6)
    tokens = torch.randn(2, 5, 6)  # a ViT's B x N x D: the channels are the last axis
    assert torch.allclose(layer(tokens[:, :, perm]), layer(tokens)[:, :, perm], atol=1e-6)


@pytest.mark.parametrize("arch", ["resnet8", "ride_resnet8"])
def test_folded_logits_equal_the_unfolded_ones(arch):
    torch.manual_seed(2)
    model = build_model(arch, 10, 1, "linear").eval()
    model.neck = EquivariantPIF()
    for p in model.neck.parameters():
        nn.init.normal_(p)
    x = torch.randn(4, 1, 16, 16)
    folded = model.folded()
    assert folded.neck is None and model.neck is not None  # a copy: the trained model keeps its layer
    assert torch.allclose(folded(x), model(x), atol=1e-5)
    assert set(folded.state_dict()) == set(build_model(arch, 10, 1, "linear").state_dict())


def test_a_cosine_head_keeps_the_layer():
    """A cosine head normalises the transformed embedding: no weights reproduce that."""
    model = build_model("resnet8", 10, 1, "cosine")
    model.neck = EquivariantPIF()
    assert not model.foldable() and model.folded() is model


def test_weights_with_the_layer_load_into_a_plain_model():
    torch.manual_seed(3)
    model = build_model("resnet8", 10, 1).eval()
    model.neck = EquivariantPIF()
    plain = build_model("resnet8", 10, 1).eval()
    plain.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 16, 16)
    assert plain.neck is not None and torch.equal(plain(x), model(x))


def _ctx(model, frozen):
    return StageContext(torch.tensor([30.0, 10.0, 3.0]), 3, 1, 1, torch.device("cpu"), model, frozen)


def test_the_layer_trains_with_the_backbone_and_not_in_a_frozen_stage():
    model = build_model("resnet8", 3, 1).train()
    ctx = _ctx(model, False)
    method = PIF(ctx, make_method("ce", ctx), form="equivariant")
    method.prepare()
    assert isinstance(model.neck, EquivariantPIF) and method.batch_coupled == ""
    batch = Batch(torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 0]), torch.arange(6))
    method.training_step(model, batch).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.neck.parameters())
    with pytest.raises(LongtailError, match="freezes"):
        PIF(_ctx(model, True), make_method("crt", _ctx(model, True)), form="equivariant")
    with pytest.raises(LongtailError, match="not a PIF form"):
        PIF(ctx, make_method("ce", ctx), form="mean")


def test_h2tf_fuses_the_channels_the_layer_outputs():
    torch.manual_seed(4)
    model = build_model("resnet8", 3, 1).train()
    model.neck = EquivariantPIF()
    ctx = _ctx(model, True)
    h2tf = H2TF(ctx, make_method("crt", ctx), ratio=1.0)  # every channel from the donor
    tail, head = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    batch = Batch(tail, torch.zeros(4, dtype=torch.long), torch.arange(4), {"head": Batch(head, torch.zeros(4, dtype=torch.long), torch.arange(4))})
    model.eval()  # BatchNorm fixed, so the donor's features are reproducible below
    model.training = True  # the hook fuses only in training mode; the modules stay in eval
    fused = h2tf.transform_features(model.features(tail), batch)
    assert torch.allclose(fused, model.neck(model.backbone(head)), atol=1e-6)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("tiny"), n_train_per_class=[50] * 10, n_test_per_class=6)


def test_pipeline_deploys_the_folded_base_architecture(tiny_root, tmp_path):
    import longtail

    stages = ("[{method: ce+pif, epochs: 2, batch_size: 32, method_args: {pif: {form: equivariant}}},"
              " {method: crt+h2tf, epochs: 1, batch_size: 32, backbone_bn: train, method_args: {h2tf: {ratio: 0.25}}}]")
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={tiny_root}", "data.imbalance_factor=10", "model.arch=resnet8",
                             "engine.progress=false", "eval.plots=false", f"stages={stages}"])
    Trainer(cfg, tmp_path, log=lambda m: None).run()
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert {k for k in state if k.startswith("neck.")} == {f"neck.conv1d.{i}.{w}" for i in range(3) for w in ("weight", "bias")}
    trained = build_model("resnet8", 10, 1)
    trained.load_state_dict(state)
    loaded = longtail.load(tmp_path)
    assert loaded.folded and loaded.model.net.neck is None
    assert set(loaded.model.net.state_dict()) == set(build_model("resnet8", 10, 1).state_dict())
    x = torch.rand(5, 1, 8, 8)
    mean, std = loaded.model.mean, loaded.model.std
    assert torch.allclose(loaded.logits(x), trained.eval()((x - mean) / std), atol=1e-5)
    path = loaded.export(tmp_path / "export", "pt2")
    assert torch.allclose(torch.export.load(str(path)).module()(x), loaded.logits(x), atol=1e-5)
    # evaluation of the stored (unfolded) model gives the per-class accuracies the run recorded
    from longtail.cli import main

    assert main(["eval", str(tmp_path), "--json", str(tmp_path / "again.json")]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert json.loads((tmp_path / "again.json").read_text())["per_class"] == m["per_class"]


# ---------------------------------------------------------------- controls of the authors' PIF
def test_affine_and_scale_controls_fold_exactly_and_reload():
    from longtail.models.pif import AffinePIF, ScalePIF, effective, init_median_scale

    torch.manual_seed(5)
    for neck in (AffinePIF(), ScalePIF(0.37)):
        model = build_model("resnet8", 10, 1, "linear").eval()
        model.neck = neck
        if isinstance(neck, AffinePIF):
            with torch.no_grad():
                neck.scale.fill_(-0.8)
                neck.offset.fill_(0.3)
        x = torch.randn(4, 1, 16, 16)
        fmap = model.backbone(x)
        want = (-0.8 * fmap + 0.3) if isinstance(neck, AffinePIF) else 0.37 * fmap
        assert torch.allclose(model.neck(fmap), want, atol=1e-6)
        assert torch.allclose(model.folded()(x), model(x), atol=1e-5)
        plain = build_model("resnet8", 10, 1).eval()
        plain.load_state_dict(model.state_dict())  # the neck's class is read from its keys
        assert type(plain.neck) is type(neck) and torch.equal(plain(x), model(x))
    assert effective(ScalePIF(0.37)) == pytest.approx({"alpha": 0.37, "beta": 0.0, "gamma": 0.0})
    assert abs(init_median_scale() - 0.10) < 0.01 and float(ScalePIF().value) == pytest.approx(init_median_scale())


def test_affine_starts_from_the_equivariant_layers_initial_law():
    """Its scale and offset are one draw of the equivariant layer's effective (α, γ) at PyTorch's
    default initialisation: compare the laws over many draws (medians of |α|, sign balance)."""
    from longtail.models.pif import AffinePIF

    torch.manual_seed(0)
    eq = [EquivariantPIF().summary() for _ in range(1500)]
    af = [AffinePIF().summary() for _ in range(1500)]
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    assert med([abs(e["alpha"]) for e in af]) == pytest.approx(med([abs(e["alpha"]) for e in eq]), abs=0.02)
    assert med([abs(e["gamma"]) for e in af]) == pytest.approx(med([abs(e["gamma"]) for e in eq]), abs=0.05)
    assert 0.4 < sum(e["alpha"] < 0 for e in af) / len(af) < 0.6 and all(e["beta"] == 0 for e in af)


def test_the_neck_is_recorded_in_the_history_each_epoch(tiny_root, tmp_path):
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={tiny_root}", "data.profile=none", "model.arch=resnet8",
                             "engine.threads=2", "engine.progress=false", "eval.plots=false",
                             "stages=[{method: ce+pif, epochs: 2, batch_size: 64, method_args: {pif: {form: affine}}}]"])
    Trainer(cfg, tmp_path / "run", log=lambda m: None).run()
    import csv

    rows = list(csv.DictReader(open(tmp_path / "run" / "history.csv")))
    assert len(rows) == 2 and all(r["neck_alpha"] and r["neck_gamma"] and float(r["neck_beta"]) == 0 for r in rows)
    assert rows[0]["neck_alpha"] != rows[1]["neck_alpha"]  # it is learned


# ---------------------------------------------------------------- the donor pass and H2Tv2
def _donor_batch(n=4, seed=6):
    g = torch.Generator().manual_seed(seed)
    tail, head = torch.randn(n, 1, 8, 8, generator=g), torch.randn(n, 1, 8, 8, generator=g) + 1.0
    labels = torch.tensor([0, 1, 2, 0][:n])
    return Batch(tail, labels, torch.arange(n), {"head": Batch(head, torch.zeros(n, dtype=torch.long), torch.arange(n))})


@pytest.mark.parametrize("donor_bn", ["train", "eval"])
def test_donor_bn_eval_leaves_the_running_statistics_as_they_are(donor_bn):
    torch.manual_seed(7)
    model = build_model("resnet8", 3, 1).train()
    ctx = _ctx(model, True)
    h2tf = H2TF(ctx, make_method("crt", ctx), ratio=0.0, donor_bn=donor_bn)
    batch = _donor_batch()
    fmap = model.features(batch.x)  # the labelled batch's own pass (it updates the statistics)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    out = h2tf.transform_features(fmap, batch)
    after = {k: v for k, v in model.state_dict().items() if "running" in k}
    same = all(torch.equal(before[k], after[k]) for k in before)
    assert same == (donor_bn == "eval") and torch.equal(out, fmap)  # ratio 0: nothing swapped either way
    assert all(m.training for m in model.modules())  # BatchNorm back in training mode


def test_convex_fusion_matches_a_hand_computation():
    from longtail.methods.pih2t import convex_distance, convex_weight

    # p = 0.6 + 0.4 (2 / (1 + d) - 1): d = 0 -> 1, d = 1 -> 0.6, d = 3 -> 0.4
    assert convex_weight(torch.tensor([0.0, 1.0, 3.0])).tolist() == pytest.approx([1.0, 0.6, 0.4])
    donor = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    means = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # mean squared norm of the donors: (1 + 4) / 2 = 2.5; d_0 = 0 / 2.5, d_1 = ||(0,2) - (0,0)||^2 / 2.5 = 1.6
    d = convex_distance(donor, means, torch.tensor([0, 1]), torch.tensor([True, True]))
    assert d.tolist() == pytest.approx([0.0, 1.6])
    assert convex_distance(donor, means, torch.tensor([0, 1]), torch.tensor([True, False])).tolist() == pytest.approx([0.0, 0.0])
    # through the plug-in: the first step has no class means (p = 1: the tail map as it is), the
    # second mixes with p from the first step's means
    torch.manual_seed(8)
    model = build_model("resnet8", 3, 1).eval()
    model.training = True  # fuse, with BatchNorm fixed so the donor's map is reproducible
    ctx = _ctx(model, True)
    h2tf = H2TF(ctx, make_method("crt", ctx), form="convex")
    batch = _donor_batch()
    f_t, f_h = model.features(batch.x), model.features(batch.extra["head"].x)
    assert torch.allclose(h2tf.transform_features(f_t, batch), f_t)
    e_t, e_h = model.pool(f_t), model.pool(f_h)
    means = torch.stack([e_t[batch.y == c].mean(0) for c in range(3)])
    p = convex_weight(((e_h - means[batch.y]) ** 2).sum(1) / (e_h ** 2).sum(1).mean())
    want = p[:, None, None, None] * f_t + (1 - p[:, None, None, None]) * f_h
    assert torch.allclose(h2tf.transform_features(f_t, batch), want, atol=1e-5)
    fixed = H2TF(ctx, make_method("crt", ctx), form="convex", p=1.0)  # the no-mixing control
    assert torch.equal(fixed.transform_features(f_t, batch), f_t)
    with pytest.raises(LongtailError, match="not a fusion form"):
        H2TF(ctx, make_method("crt", ctx), form="blend")


def test_bn_refresh_updates_the_statistics_with_the_refresh_batch_alone():
    """+bnrefresh (ours): its batch goes through with BatchNorm updating even where the stage
    keeps BatchNorm frozen, the running statistics become exactly what that one pass gives, no
    gradient reaches the backbone, the labelled map is returned as it is, and evaluation does
    nothing."""
    from longtail.methods.bn_refresh import BNRefresh

    torch.manual_seed(9)
    model = build_model("resnet8", 3, 1).train()
    model.backbone.eval()  # backbone_bn: frozen, as MiSLAS's CIFAR-10 stage
    ctx = _ctx(model, True)
    plug = BNRefresh(ctx, make_method("crt", ctx))
    assert plug.extra_samplers["refresh"] == "instance"
    g = torch.Generator().manual_seed(3)
    x, refresh = torch.randn(4, 1, 8, 8, generator=g), torch.randn(6, 1, 8, 8, generator=g) * 2 + 1
    batch = Batch(x, torch.tensor([0, 1, 2, 0]), torch.arange(4), {"refresh": Batch(refresh, torch.zeros(6, dtype=torch.long), torch.arange(6))})
    # the hand value: a copy of the model passes the refresh batch alone in training mode
    import copy

    ref = copy.deepcopy(model).train()
    with torch.no_grad():
        ref.backbone(refresh)
    fmap = model.features(x)
    out = plug.transform_features(fmap, batch)
    assert torch.equal(out, fmap)
    for (k, v), (_, w) in zip(model.state_dict().items(), ref.state_dict().items()):
        if "running" in k or "num_batches" in k:
            assert torch.equal(v, w), k
    assert not any(m.training for m in model.backbone.modules())  # frozen again after its pass
    assert all(p.grad is None for p in model.backbone.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    model.eval()
    plug.transform_features(model.features(x), batch)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items() if "running" in k)
