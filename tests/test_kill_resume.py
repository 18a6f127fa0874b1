"""`longtail train` killed with SIGKILL at random moments (inside epochs, across the stage
boundary, between IP-DPP redraws) and resumed with --resume ends with the same weights, bit
for bit, as an uninterrupted run."""

import importlib.util
import random
import subprocess
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("fault_tolerance", Path(__file__).parents[1] / "benchmarks" / "fault_tolerance.py")
ft = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ft)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_exact(tmp_path):
    cfg = ft.write_config(tmp_path / "cfg.yaml", ft.write_data(tmp_path / "data"))
    ref = ft._train(cfg, tmp_path / "ref")
    _, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err
    # after epoch 2 (inside stage 1), after epoch 3 (at the stage boundary), after epoch 6
    # (inside IP-DPP, between its redraws); a random moment into the next epoch
    rng = random.Random(1)
    results = [ft.kill_and_resume(cfg, tmp_path / "ref", tmp_path / f"k{n}", n, rng.uniform(0.0, 0.1)) for n in (2, 3, 6)]
    assert all(r["identical"] for r in results), results
    assert all(r["killed"] for r in results)
    # resuming a finished run rewrites its outputs from the checkpoint, unchanged
    again = ft._train(cfg, tmp_path / "ref", resume=True)
    again.communicate(timeout=600)
    assert again.returncode == 0 and ft.same_weights(tmp_path / "k2", tmp_path / "ref")


def test_second_live_run_in_the_same_folder_is_refused(tmp_path):
    cfg = ft.write_config(tmp_path / "cfg.yaml", ft.write_data(tmp_path / "data"))
    import yaml

    long = yaml.safe_load(cfg.read_text())
    long["stages"][0]["epochs"] = 500  # the first run is still live when the second starts (it is killed below)
    cfg.write_text(yaml.safe_dump(long))
    first = ft._train(cfg, tmp_path / "run")
    try:
        import time

        for _ in range(200):  # wait until the first run holds its lock
            if (tmp_path / "run" / ".lock").exists():
                break
            time.sleep(0.05)
        import sys

        r = subprocess.run([sys.executable, "-m", "longtail", "train", str(cfg), "--out", str(tmp_path / "run"), "--resume"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "in use by process" in r.stderr, r.stderr
    finally:
        first.kill()
        first.wait()
