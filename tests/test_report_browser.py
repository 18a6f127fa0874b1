"""The HTML report loads in headless Chromium and shows the table (Debian's chromium; .ci/run
installs it)."""

import shutil
import subprocess

import pytest

from conftest import write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer
from longtail.evaluation.html import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_run_report_renders_in_headless_chromium(tmp_path):
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=4)
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10", "model.arch=resnet8",
                             "engine.progress=false", "stages=[{method: ce, epochs: 1, batch_size: 32}, {method: crt, epochs: 1, batch_size: 32}]"])
    Trainer(cfg, tmp_path / "run", log=lambda m: None).run()
    page = write_report(tmp_path / "run")
    profile = tmp_path / "profile"
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<table>" in dom and "<td>crt</td>" in dom and "Per-class accuracy" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1100,1400", page.as_uri()], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000  # a rendered page with its plots, not a blank one
