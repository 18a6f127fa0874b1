"""PIF: the fused channels are the class's batch mean, the output is invariant under any
permutation of the same-class set, both PI-H2T hooks are inert in ``model.eval()``, ``+pih2t``
picks the right half per stage, and ``ce → crt+h2tf`` and ``ce+pih2t → crt+pih2t`` runs deploy
the plain model (``+pih2t``'s PIF is the authors' layer, folded into the head)."""

import json

import pytest
import torch

from conftest import write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer
from longtail.methods import Batch, StageContext, make_method
from longtail.methods.bns import BNS
from longtail.methods.pih2t import H2TF, PIF, PIH2T, class_mean_fuse
from longtail.models import build_model

Y = torch.tensor([0, 1, 0, 2, 0, 1])  # class 2 has a single member: fusing leaves it as it is


def test_fused_channels_are_the_class_mean_and_the_rest_untouched():
    f = torch.randn(6, 8, 2, 2)
    ch = torch.tensor([1, 4, 6])
    out = class_mean_fuse(f, Y, ch, 3)
    for i, y in enumerate(Y):
        mean = f[Y == y][:, ch].mean(0)
        torch.testing.assert_close(out[i, ch], mean)
    keep = [c for c in range(8) if c not in ch.tolist()]
    assert torch.equal(out[:, keep], f[:, keep])
    assert torch.equal(out[3], f[3])  # singleton class
    hand = (f[0, 1, 0, 0] + f[2, 1, 0, 0] + f[4, 1, 0, 0]) / 3  # class 0, channel 1, pixel (0, 0)
    assert torch.isclose(out[2, 1, 0, 0], hand)


@pytest.mark.parametrize("seed", range(5))
def test_permutation_invariance(seed):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(6, 8, 2, 2, generator=g)
    ch = torch.randperm(8, generator=g)[:3]
    perm = torch.randperm(6, generator=g)
    out = class_mean_fuse(f, Y, ch, 3)
    # reordering the batch (so any same-class set) only reorders the output: each sample's
    # fused channels depend on its class's members as a set
    torch.testing.assert_close(class_mean_fuse(f[perm], Y[perm], ch, 3), out[perm], rtol=0, atol=1e-6)
    # and all members of a class share the same fused channels
    for c in range(3):
        members = out[Y == c][:, ch]
        torch.testing.assert_close(members, members[:1].expand_as(members))


def test_gradient_reaches_every_member_of_the_class():
    f = torch.randn(6, 4, 1, 1, requires_grad=True)
    out = class_mean_fuse(f, Y, torch.tensor([0]), 3)
    out[0, 0].sum().backward()  # sample 0's fused channel 0 = mean of samples 0, 2, 4
    assert torch.allclose(f.grad[[0, 2, 4], 0].flatten(), torch.full((3,), 1 / 3))
    assert f.grad[[1, 3, 5]].abs().sum() == 0


def _ctx(model, frozen):
    return StageContext(torch.tensor([50.0, 20, 10, 5, 2]), 5, 1, 1, torch.device("cpu"), model, frozen)


def _batch():
    x = torch.randn(6, 1, 8, 8)
    y = torch.tensor([4, 4, 3, 2, 1, 1])
    return Batch(x, y, torch.arange(6), {"head": Batch(torch.randn(6, 1, 8, 8), torch.zeros(6, dtype=torch.long), torch.arange(6))})


@pytest.mark.parametrize("plugin", ["pif", "h2tf"])
def test_hooks_are_inert_in_eval_mode(plugin):
    torch.manual_seed(0)
    model = build_model("resnet8", 5, 1)
    frozen = plugin == "h2tf"
    ctx = _ctx(model, frozen)
    method = {"pif": PIF, "h2tf": H2TF}[plugin](ctx, make_method("crt" if frozen else "ce", ctx), ratio=0.5)
    batch = _batch()
    model.eval()
    f = model.features(batch.x)
    assert method.transform_features(f, batch) is f
    model.train()
    assert not torch.equal(method.transform_features(f, batch), f)


def test_pih2t_picks_pif_when_the_backbone_trains_and_h2tf_in_a_classifier_stage():
    model = build_model("resnet8", 5, 1)
    rep = PIH2T(_ctx(model, False), make_method("ce", _ctx(model, False)), pif={"ratio": 0.5})
    cls = PIH2T(_ctx(model, True), make_method("crt", _ctx(model, True)), h2tf={"ratio": 0.1, "head_sampler": "sqrt"})
    assert isinstance(rep.half, PIF) and rep.half.args["ratio"] == 0.5 and rep.extra_samplers == {}
    assert isinstance(cls.half, H2TF) and cls.half.args["ratio"] == 0.1 and cls.extra_samplers == {"head": "sqrt"}


def test_a_base_with_its_own_step_calls_the_plugin_hook():
    """BNS runs its own two-view step; wrapped as bns+pif the PIF hook must still run."""
    torch.manual_seed(0)
    model = build_model("resnet8", 5, 1).train()
    ctx = _ctx(model, False)
    calls = []

    class Spy(PIF):
        def transform_features(self, fmap, batch):
            calls.append(fmap.shape[0])
            return super().transform_features(fmap, batch)

    bns = BNS(ctx)
    method = Spy(ctx, bns)
    bns.prepare()
    batch = _batch()
    batch.view = lambda: torch.randn(6, 1, 8, 8)
    assert torch.isfinite(method.training_step(model, batch))
    assert calls == [6, 6]  # both views


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("tiny"), n_train_per_class=[50] * 10, n_test_per_class=6)


PIPELINES = {
    "h2tf": ("[{method: ce, epochs: 2, batch_size: 32}, {method: crt+h2tf, epochs: 1, batch_size: 32, backbone_bn: train, "
             "method_args: {h2tf: {ratio: 0.25}}}]", ["ce", "crt+h2tf"]),
    "pih2t": ("[{method: ce+pih2t, epochs: 2, batch_size: 32, method_args: {pih2t: {pif: {ratio: 0.5}}}},"
              " {method: crt+pih2t, epochs: 1, batch_size: 32}]", ["ce+pih2t", "crt+pih2t"]),
    # H2T's CE stage 1 adds mixup (configs/cifar*_lt/ce_pih2t.yaml): three methods in one step
    "mixup_pih2t": ("[{method: ce+mixup+pih2t, epochs: 2, batch_size: 32, method_args: {mixup: {alpha: 1.0}, pih2t: {pif: {ratio: 0.5}}}},"
                    " {method: crt+pih2t, epochs: 1, batch_size: 32}]", ["ce+mixup+pih2t", "crt+pih2t"]),
}


@pytest.mark.parametrize("name", PIPELINES)
def test_fusion_pipelines_deploy_the_plain_architecture(name, tiny_root, tmp_path):
    stages, methods = PIPELINES[name]
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={tiny_root}", "data.imbalance_factor=10", "model.arch=resnet8",
                             "engine.progress=false", "eval.plots=false", f"stages={stages}"])
    Trainer(cfg, tmp_path, log=lambda m: None).run()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert [s["method"] for s in m["stages"]] == methods
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    plain = build_model("resnet8", 10, 1)
    loaded = build_model("resnet8", 10, 1)
    loaded.load_state_dict(state)  # the base architecture, plus the authors' PIF layer where +pih2t trained one
    assert set(state) - set(plain.state_dict()) == ({k for k in state if k.startswith("neck.")} if "pih2t" in name else set())
    import longtail

    # predict / export deploy exactly the base architecture (the layer folded into the head)
    assert set(longtail.load(tmp_path).model.net.state_dict()) == set(plain.state_dict())
    # the plain model, evaluated afresh, gives the per-class accuracies the run recorded
    from longtail.cli import main

    assert main(["eval", str(tmp_path), "--json", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["per_class"] == m["per_class"]
