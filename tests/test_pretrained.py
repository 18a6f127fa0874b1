"""Backbones from elsewhere: a token-map ViT of our own (pooling over tokens, PIF / H2TF on its
embedding channels), a local state dict (model.weights), and timm (model.arch: timm:<name>,
model.pretrained) with its input size and normalisation, through a stand-in of timm's API
here and the real package where it is installed."""

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from conftest import write_mnist_folder
from longtail.cli import main
from longtail.config import load_config
from longtail.engine.trainer import Trainer
from longtail.errors import LongtailError
from longtail.methods.pih2t import channels_first, head_to_tail_fuse
from longtail.models import build_model

ROOT = Path(__file__).parents[1]


def test_vit_token_map_and_its_pooling():
    torch.manual_seed(0)
    m = build_model("vit_tiny", 10, 1)
    for size in (28, 32):  # position embeddings follow the patch grid
        x = torch.randn(3, 1, size, size)
        tokens = m.features(x)
        assert tokens.shape == (3, 1 + (size // 4) ** 2, 96)
        assert torch.equal(m.pool(tokens), tokens[:, 0]) and m(x).shape == (3, 10)


def test_fusion_takes_embedding_channels_of_every_token():
    tail, head = torch.zeros(2, 5, 8), torch.ones(2, 5, 8)
    out = channels_first(head_to_tail_fuse(channels_first(tail), channels_first(head), torch.tensor([1, 6])))
    assert out.shape == (2, 5, 8)
    assert (out[..., [1, 6]] == 1).all() and (out[..., [0, 2, 3, 4, 5, 7]] == 0).all()


@pytest.mark.parametrize("stages", [
    "[{method: ce+pif, epochs: 2, batch_size: 50, optimizer: {name: adamw, lr: 0.002}}]",
    "[{method: ce, epochs: 2, batch_size: 50, optimizer: {name: adamw, lr: 0.002}}, {method: crt+h2tf, epochs: 1, batch_size: 50}]",
])
def test_pif_and_h2tf_train_a_vit(tmp_path, stages):
    root = write_mnist_folder(tmp_path / "m", n_train_per_class=[30] * 10, n_test_per_class=10, size=16)
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={root}", "data.profile=none", "model.arch=vit_tiny",
                             "engine.threads=2", "engine.progress=false", "eval.plots=false", f"stages={stages}"])
    m = Trainer(cfg, tmp_path / "run", log=lambda m: None).run()
    assert m["overall"] > 25  # ten brightness classes: far above chance (10%) after two epochs


def test_local_backbone_weights(tmp_path):
    torch.manual_seed(1)
    src = build_model("resnet8", 7, 3)
    state = dict(src.backbone.state_dict(), **{"fc.weight": torch.zeros(1000, 64), "fc.bias": torch.zeros(1000)})
    torch.save(state, tmp_path / "w.pt")
    m = build_model("resnet8", 3, 3, weights=str(tmp_path / "w.pt"))
    for a, b in zip(src.backbone.state_dict().values(), m.backbone.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(LongtailError, match="do not fit"):
        build_model("resnet20", 3, 3, weights=str(tmp_path / "w.pt"))
    with pytest.raises(LongtailError, match="has no published weights"):
        build_model("resnet8", 3, 3, pretrained=True)


def test_pretrained_on_an_own_arch_stops_before_any_data(tmp_path, capsys):
    assert main(["train", str(ROOT / "configs/demo.yaml"), "--set", "model.pretrained=true", "--set", "data.root=/nonexistent",
                 "--out", str(tmp_path / "r")]) == 2
    assert "has no published weights" in capsys.readouterr().err and not (tmp_path / "r").exists()


class _FakeTimmNet(nn.Module):
    """What longtail uses of a timm model: forward_features, forward_head(pre_logits), num_features."""

    def __init__(self, in_chans):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_chans, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU())
        self.num_features = 12

    def forward_features(self, x):
        return self.conv(x)

    def forward_head(self, x, pre_logits=False):
        return x.amax(dim=(2, 3))  # not a mean: shows longtail pools with the model's own head


@pytest.fixture
def fake_timm(monkeypatch):
    made = []
    timm = types.ModuleType("timm")
    timm.data = types.ModuleType("timm.data")

    def create_model(name, pretrained=False, num_classes=None, in_chans=3):
        made.append((name, pretrained, num_classes, in_chans))
        return _FakeTimmNet(in_chans)

    timm.create_model = create_model
    timm.data.resolve_data_config = lambda args, model=None: {"input_size": (3, 20, 20), "mean": (0.5, 0.4, 0.3),
                                                              "std": (0.2, 0.2, 0.2), "crop_pct": 0.8}
    monkeypatch.setitem(sys.modules, "timm", timm)
    monkeypatch.setitem(sys.modules, "timm.data", timm.data)
    return made


def test_timm_backbone_input_follows_its_weights(tmp_path, fake_timm, capsys):
    rng = np.random.default_rng(0)
    for c in range(2):
        (tmp_path / "img" / f"k{c}").mkdir(parents=True)
        for i in range(12):
            h, w = rng.integers(30, 40, 2)
            Image.fromarray(np.full((h, w, 3), 60 + 120 * c, np.uint8)).save(tmp_path / "img" / f"k{c}" / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "configs/finetune_pretrained.yaml"), "--set", f"data.root={tmp_path / 'img'}",
                 "--set", "model.arch=timm:fake_net", "--set", "stages.0.epochs=1", "--set", "engine.progress=false",
                 "--out", str(run)]) == 0
    log = capsys.readouterr().out
    assert "input 20 px from 25 px" in log and "normalisation of timm:fake_net's weights" in log
    assert ("fake_net", True, 0, 3) in fake_timm  # pretrained weights asked of timm, its classifier removed
    inp = json.loads((run / "metrics.json").read_text())["run"]["input"]
    assert (inp["size"], inp["resize"]) == (20, 25) and inp["mean"] == [0.5, 0.4, 0.3]
    model = build_model("timm:fake_net", 2, 3)
    fmap = model.features(torch.randn(2, 3, 8, 8))
    assert torch.equal(model.pool(fmap), fmap.amax(dim=(2, 3)))


def test_offline_pretrained_fails_at_once_naming_the_fix(tmp_path, fake_timm, monkeypatch, capsys):
    """No connection to the model hub: timm is asked with the hub client offline (so it reads its
    cache and fails at once instead of retrying), and the error names model.weights."""
    import longtail.models as models

    seen = []

    def create_model(name, pretrained=False, num_classes=None, in_chans=3):
        import os

        seen.append(os.environ.get("HF_HUB_OFFLINE"))
        raise OSError("We couldn't connect to the hub to load this file, and it was not found in the cached files.")

    monkeypatch.setattr(sys.modules["timm"], "create_model", create_model)
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(LongtailError) as e:
        models.TimmBackbone("fake_net", 3, pretrained=True)
    assert seen == ["1"] and "no connection to the model hub" in str(e.value) and "model.weights: PATH" in e.value.fix
    import os

    assert "HF_HUB_OFFLINE" not in os.environ  # restored
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not models._hub_reachable()


def test_real_timm_backbones():
    pytest.importorskip("timm")
    for name, dims in (("resnet18", 4), ("vit_tiny_patch16_224", 3)):
        m = build_model(f"timm:{name}", 5, 3)
        fmap = m.features(torch.randn(2, 3, 224, 224))
        assert fmap.ndim == dims and m.pool(fmap).shape == (2, m.feature_dim) and m(torch.randn(1, 3, 224, 224)).shape == (1, 5)


def test_torchvision_built_for_another_torch_is_named_with_the_fix(tmp_path, monkeypatch, capsys):
    """The registry's torchvision for another torch fails at import with a RuntimeError (operator
    torchvision::nms does not exist): info and train name the cause and the fix, no traceback."""
    import builtins

    real = builtins.__import__

    def broken(name, *a, **k):
        if name == "timm" or name.startswith("timm."):
            raise RuntimeError("operator torchvision::nms does not exist")
        return real(name, *a, **k)

    monkeypatch.delitem(sys.modules, "timm", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    for cmd in ("info", "train"):
        assert main([cmd, str(ROOT / "configs/finetune_pretrained.yaml"), "--set", f"data.root={tmp_path}"]) != 0
        err = capsys.readouterr().err
        assert "does not load with torch" in err and "torchvision::nms" in err and "same package index" in err
        assert "Traceback" not in err
