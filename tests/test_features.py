"""Features once, heads many: a head-only stage on cached pooled features gives the same weights, bit for bit,
as the same stage through the images, reads the features back instead of computing them, and
stages the cache cannot stand for are refused with the reason before any work."""

import pytest
import torch

from conftest import write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer
from longtail.errors import LongtailError

HEAD_METHODS = ["crt", "logit_adjust", "balanced_softmax", "lws", "focal", "cb_reweight", "mislas"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_mnist_folder(tmp_path_factory.mktemp("feat"), n_train_per_class=[40, 30, 20, 12, 8, 6, 5, 4, 3, 3],
                              n_test_per_class=6)


def cfg(root, cache_dir, method="crt", cached=True, *extra):
    return load_config(None, [
        "data.dataset=mnist", f"data.root={root}", "data.profile=none", "data.val_fraction=0.2", f"data.cache_dir={cache_dir}",
        "model.arch=resnet8", "engine.threads=2", "engine.progress=false", "eval.plots=false",
        "stages=[{method: ce, epochs: 1, batch_size: 32, optimizer: {lr: 0.05}}, "
        f"{{method: {method}, epochs: 3, batch_size: 16, train: head, augment: false, cache_features: {str(cached).lower()}, "
        "optimizer: {lr: 0.1}}]", *extra])


def weights(folder):
    return torch.load(folder / "model.pt", weights_only=True)


@pytest.mark.parametrize("method", HEAD_METHODS)
def test_cached_stage_gives_the_uncached_weights(root, tmp_path, method):
    logs = []
    a = Trainer(cfg(root, tmp_path / "c", method, True), tmp_path / "cached", log=logs.append).run()
    b = Trainer(cfg(root, tmp_path / "c", method, False), tmp_path / "plain", log=lambda m: None).run()
    wa, wb = weights(tmp_path / "cached"), weights(tmp_path / "plain")
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert a["overall"] == pytest.approx(b["overall"], abs=1e-9)
    assert any("features:" in m and "through the frozen backbone" in m for m in logs)


def test_features_are_read_back_for_another_head(root, tmp_path):
    Trainer(cfg(root, tmp_path / "c", "crt"), tmp_path / "one", log=lambda m: None).run()
    files = list((tmp_path / "c" / "features").glob("*.pt"))
    assert len(files) == 1
    # another head method on the same stage 1 (model.init) reads the same features
    logs = []
    again = cfg(root, tmp_path / "c", "balanced_softmax", True, f"model.init={tmp_path / 'one'}", "start_stage=1")
    Trainer(again, tmp_path / "two", log=logs.append).run()
    assert any(m.startswith("features: read from") for m in logs)
    assert len(list((tmp_path / "c" / "features").glob("*.pt"))) == 1


@pytest.mark.parametrize("stage, why", [
    ("{method: crt+h2tf, epochs: 1, augment: false, cache_features: true}", "'h2tf' changes the feature map"),
    ("{method: ce+mixup, epochs: 1, train: head, augment: false, cache_features: true}", "'mixup' reads the images"),
    ("{method: bns, epochs: 1, train: head, augment: false, cache_features: true}", "'bns' reads the images"),
    ("{method: ce, epochs: 1, augment: false, cache_features: true}", "trains the backbone (train: all)"),
    ("{method: crt, epochs: 1, cache_features: true}", "augmented views differ"),
    ("{method: crt, epochs: 1, augment: false, backbone_bn: train, cache_features: true}", "BatchNorm statistics"),
])
def test_stages_the_cache_cannot_stand_for_are_refused_before_any_work(tmp_path, stage, why):
    c = load_config(None, ["data.dataset=mnist", f"data.root={tmp_path / 'nothing'}", f"stages=[{stage}]"])
    with pytest.raises(LongtailError) as e:
        Trainer(c, tmp_path / "run", log=lambda m: None)  # the data folder does not even exist
    assert "cache_features cannot stand for the images" in str(e.value) and why in str(e.value)
