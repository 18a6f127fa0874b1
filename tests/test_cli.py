import subprocess
import sys

from conftest import needs_fmnist, write_mnist_folder
from longtail.cli import main


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
    assert "6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60 (14,886 images)" in out
    assert "many (> 100): 8 classes" in out


def test_info_saves_a_preview_of_each_stages_views(tmp_path, capsys):
    root = write_mnist_folder(tmp_path / "m")
    png = tmp_path / "views.png"
    rc = main(["info", "configs/demo.yaml", "--set", "data.dataset=mnist", "--set", f"data.root={root}",
               "--set", "data.imbalance_factor=10", "--set", "stages.0.augment={policy: simclr, strength: 2}",
               "--views", str(png)])
    assert rc == 0 and f"augmented views: {png}" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
