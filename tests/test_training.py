"""One short real training run on Fashion-MNIST-LT (IF 100), CE -> cRT.

Thresholds: ResNet-8 after 2 epochs of CE must reach 40% overall (chance: 10%; measured here
49.1) with the head half 10+ points above the tail half (measured 70.4 vs 27.8), and one
epoch of cRT must reach 55% overall and raise the tail half by 15+ points (measured 67.4 and
58.4): the long-tail effect and its fix, on the real data, in about 30 s on 2 CPU cores.
"""

import json

import pytest

from conftest import needs_fmnist
from longtail.config import load_config
from longtail.engine.trainer import Trainer


@pytest.mark.slow
@needs_fmnist
def test_short_ce_then_crt_on_fashion_mnist_lt(tmp_path):
    cfg = load_config("configs/demo.yaml", ["model.arch=resnet8", "stages.0.epochs=2", "stages.1.epochs=1",
                                            "engine.progress=false"])
    Trainer(cfg, tmp_path, log=lambda m: None).run()
    m = json.loads((tmp_path / "metrics.json").read_text())
    ce, crt = m["stages"]
    assert m["class_counts"] == [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
    assert ce["overall"] > 40, ce["overall"]
    assert ce["head"] > ce["tail"] + 10  # the long-tail collapse
    assert crt["overall"] > 55, crt["overall"]
    assert crt["tail"] > ce["tail"] + 15, (ce["tail"], crt["tail"])
    for png in ("per_class.png", "confusion.png", "reliability.png"):
        assert (tmp_path / png).stat().st_size > 5000
