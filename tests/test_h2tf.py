"""H2TF: exactly ⌊ρC⌋ channels of the tail-drawn samples replaced, labels kept, nothing fused
at inference, and a real two-stage run with ``crt+h2tf``."""

import json

import pytest
import torch

from conftest import write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer
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


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("tiny"), n_train_per_class=[50] * 10, n_test_per_class=6)


def test_crt_plus_h2tf_trains_and_deploys_the_plain_architecture(tiny_root, tmp_path):
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={tiny_root}", "data.imbalance_factor=10", "model.arch=resnet8",
                             "engine.progress=false", "eval.plots=false",
                             "stages=[{method: ce, epochs: 2, batch_size: 32}, {method: crt+h2tf, epochs: 1, batch_size: 32, "
                             "backbone_bn: train, method_args: {h2tf: {ratio: 0.25}}}]"])
    Trainer(cfg, tmp_path, log=lambda m: None).run()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert [s["method"] for s in m["stages"]] == ["ce", "crt+h2tf"]
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    plain = build_model("resnet8", 10, 1)
    plain.load_state_dict(state)  # exactly the base architecture's parameters
    assert set(state) == set(plain.state_dict())
    from longtail.cli import main

    assert main(["eval", str(tmp_path), "--json", str(tmp_path / "again.json")]) == 0
    assert json.loads((tmp_path / "again.json").read_text())["per_class"] == m["per_class"]
