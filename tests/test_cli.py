import subprocess
import sys

import pytest

from conftest import needs_fmnist, write_mnist_folder
from longtail.cli import main
from longtail.errors import LongtailError


def test_unknown_key_is_one_clean_error(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("stages:\n  - method: ce\n    epoch: 3\n")
    assert main(["info", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config: unknown key 'stages.0.epoch'") and "Traceback" not in err
    assert "did you mean 'epochs'" in err


def test_unknown_method_is_one_clean_error(tmp_path, capsys):
    root = write_mnist_folder(tmp_path / "m")
    rc = main(["train", "configs/demo.yaml", "--set", "data.dataset=mnist", "--set", f"data.root={root}",
               "--set", "data.imbalance_factor=10", "--set", "stages.0.method=magic", "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "unknown method 'magic'" in capsys.readouterr().err


@needs_fmnist
def test_info_prints_fashion_mnist_lt_counts():
    out = subprocess.run([sys.executable, "-m", "longtail", "info", "configs/demo.yaml"], capture_output=True, text=True, check=True).stdout
    assert "T-shirt/top 6000, Trouser 3596, Pullover 2156, Dress 1292, Coat 774, Sandal 464, Shirt 278, Sneaker 166, " \
           "Bag 100, Ankle boot 60 (14,886 images)" in out
    assert "many (> 100): 8 classes: T-shirt/top" in out and "test images per class: T-shirt/top 1000" in out
    assert "imbalanced" not in out  # the test set is balanced: overall accuracy leads


def test_info_saves_a_preview_of_each_stages_views(tmp_path, capsys):
    root = write_mnist_folder(tmp_path / "m")
    png = tmp_path / "views.png"
    rc = main(["info", "configs/demo.yaml", "--set", "data.dataset=mnist", "--set", f"data.root={root}",
               "--set", "data.imbalance_factor=10", "--set", "stages.0.augment={policy: simclr, strength: 2}",
               "--views", str(png)])
    assert rc == 0 and f"augmented views: {png}" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_floats_without_a_dot_and_the_version(tmp_path, capsys):
    from longtail import __version__
    from longtail.config import load_config

    (tmp_path / "c.yaml").write_text("stages:\n  - {method: ce, optimizer: {lr: 1e-3, weight_decay: 5e-4}}\n")
    cfg = load_config(tmp_path / "c.yaml", ["stages.0.optimizer.momentum=9E-1"])
    o = cfg.stages[0].optimizer
    assert (o.lr, o.weight_decay, o.momentum) == (1e-3, 5e-4, 0.9)
    with pytest.raises(LongtailError, match="must be float"):
        load_config(tmp_path / "c.yaml", ["stages.0.optimizer.lr=1e-3x"])
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"longtail {__version__}"


def test_resume_from_the_stored_config_and_refusals_before_any_work(tmp_path, capsys):
    from conftest import write_mnist_folder

    root = write_mnist_folder(tmp_path / "data")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{dataset: mnist, root: {root}, imbalance_factor: 10}}\nmodel: {{arch: resnet8}}\n"
                   "stages: [{method: ce, epochs: 1, batch_size: 32}]\nengine: {progress: false}\neval: {plots: false}\n")
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(run)]) == 0
    before = (run / "config.yaml").read_text()
    # a resume whose config differs from the stored one is refused, naming the key; nothing is rewritten
    assert main(["train", str(cfg), "--out", str(run), "--resume", "--set", "stages.0.batch_size=16"]) == 2
    err = capsys.readouterr().err
    assert "stages.0.batch_size (stored 32, now 16)" in err and (run / "config.yaml").read_text() == before
    # --resume RUN alone: the run's own config (a finished run only rewrites its outputs)
    assert main(["train", "--resume", str(run)]) == 0
    capsys.readouterr()
    assert main(["train"]) == 2 and "needs a config" in capsys.readouterr().err


@pytest.mark.parametrize("override,message", [
    ("stages.0.method=cee", "did you mean 'ce'"),
    ("stages.0.method=ce+mixupp", "did you mean 'mixup'"),
    ("stages.0.method=mixup", "is a plug-in, not a base method"),
    ("stages.0.method=ce+crt", "is not a plug-in"),
    ("stages.0.method_args={gamm: 2}", "has no parameter"),
    ("model.arch=resnet33", "did you mean 'resnet32'"),
])
def test_config_errors_fire_before_any_data_is_read(tmp_path, capsys, override, message):
    # the data root does not exist: an error about the method must come first, and no run folder is made
    cfg = ["--set", "data.dataset=mnist", "--set", f"data.root={tmp_path / 'missing'}", "--set", override]
    if "gamm" in override:
        cfg += ["--set", "stages.0.method=focal"]
    assert main(["train", "configs/demo.yaml", "--out", str(tmp_path / "run"), *cfg]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()
    assert main(["info", "configs/demo.yaml", *cfg]) == 2
    assert message in capsys.readouterr().err
