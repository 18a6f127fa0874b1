"""The GPU path on an emulated CUDA device (tests/cuda_emulation): every registered method and
plug-in trains a few steps with ``engine.device: cuda`` (bf16 autocast unless the pipeline names
another precision), evaluates, checkpoints, resumes after a kill, predicts and exports, with no
op that CUDA would refuse for mixing devices, and with the host never waiting for the device in
a steady-state training step (fp16 included: the fused optimiser takes GradScaler's inf check
on the device). Needs g++ and torch's C++ headers to build the shim; skipped without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DRIVE = HERE / "cuda_emulation" / "drive.py"

sys.path.insert(0, str(HERE / "cuda_emulation"))
from emu_build import build_shim  # noqa: E402
from emu_pipelines import NAMES  # noqa: E402

# steady-state device->host waits allowed per training step, by pipeline (0 unless named); a
# for-each (not fused) optimiser under fp16 would make one: GradScaler.step reads found_inf back
SYNCS_PER_STEP: dict[str, int] = {}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    work = tmp_path_factory.mktemp("emulated_cuda")
    shim, why = build_shim(work)
    if shim is None:
        pytest.skip(why)
    out = work / "report.json"
    env = {**os.environ, "LONGTAIL_CUDA_SHIM": str(shim)}
    r = subprocess.run([sys.executable, str(DRIVE), str(out), str(work / "work")], env=env, capture_output=True, text=True,
                       timeout=1200)
    assert out.exists(), f"the driver wrote no report (exit {r.returncode}): {r.stderr[-3000:]}"
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_the_emulated_gpu_without_mismatches_or_step_syncs(name, report):
    result = report[name]
    assert result["error"] is None, result["error"]
    assert result["mismatches"] == [], result["mismatches"]
    steady = result["steady_state"]
    assert steady, "no steady-state training step was seen"
    allowed = SYNCS_PER_STEP.get(name, 0)
    for kind, s in steady.items():
        assert s["syncs"] <= allowed * s["steps"], f"{kind}: {s['syncs']} syncs in {s['steps']} steps: {s['lines']}"
