"""Host syncs and ops per training step on the emulated CUDA device, by stage type, and what
they imply for a launch-bound GPU run.

    python benchmarks/emulated_cuda.py            # -> benchmarks/results/emulated_cuda.json

Runs tests/cuda_emulation/drive.py (the emulation the test suite uses: every op checked against
CUDA's device rules, every point where the host waits for the device recorded with its line)
on the pipelines below, and counts, for each stage type, the device ops and the syncs of a
steady-state step. A GPU runs such small steps at the speed the host can launch kernels: with
eager PyTorch about 5-8 µs of host time an op, so ``ops × 5-8 µs`` bounds a step from below
whatever the GPU; a sync adds a round trip (about 10-20 µs) and stops the host from running
ahead. The estimate for gpu_check.sh's 200-epoch run (Fashion-MNIST-LT IF 100, 14,886 images,
batch 128: 23,400 steps of ResNet-32 CE) is ``steps × max(ops × 5-8 µs, 1-2 ms of GPU work)``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cuda_emulation"))
from emu_build import build_shim  # noqa: E402

PIPELINES = ["ce", "ce_resnet32", "ce_fp16", "bns_simclr_probe", "ipdpp_simclr_views", "mixup_pif_h2tf", "pih2t_authors_pif",
             "mislas", "gcl", "ride"]
GPU_CHECK_STEPS = 200 * -(-14886 // 128)  # 200 epochs of ceil(14,886 / 128) steps


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="emulated-cuda-"))
    shim, why = build_shim(work)
    if shim is None:
        raise SystemExit(f"error: {why}")
    out = work / "report.json"
    subprocess.run([sys.executable, str(ROOT / "tests" / "cuda_emulation" / "drive.py"), str(out), str(work / "work"), *PIPELINES],
                   env={**os.environ, "LONGTAIL_CUDA_SHIM": str(shim)}, check=True)
    report = json.loads(out.read_text())
    rows = []
    for name, r in report.items():
        for kind, s in r["steady_state"].items():
            rows.append({"pipeline": name, "stage": kind, "steps": s["steps"], "syncs_per_step": round(s["syncs"] / s["steps"], 2),
                         "ops_per_step": round(s["ops"] / s["steps"]), "sync_lines": s["lines"], "error": r["error"],
                         "mismatches": len(r["mismatches"])})
    ops = next(x["ops_per_step"] for x in rows if x["pipeline"] == "ce_resnet32")
    host = (ops * 5e-6, ops * 8e-6)
    estimate = {"steps": GPU_CHECK_STEPS, "ops_per_step": ops, "host_ms_per_step": [round(1e3 * h, 2) for h in host],
                "gpu_ms_per_step_assumed": [1.0, 2.0],
                "minutes": [round(GPU_CHECK_STEPS * max(host[0], 1e-3) / 60, 1), round(GPU_CHECK_STEPS * max(host[1], 2e-3) / 60, 1)],
                "note": "eager PyTorch, no CUDA graphs: launch-bound; an estimate, not a measurement (no GPU here)"}
    result = {"date": time.strftime("%Y-%m-%d"), "command": "python benchmarks/emulated_cuda.py", "rows": rows,
              "gpu_check_200_epochs_estimate": estimate}
    dest = ROOT / "benchmarks" / "results" / "emulated_cuda.json"
    dest.write_text(json.dumps(result, indent=1) + "\n")
    for x in rows:
        print(f"{x['pipeline']:>20} {x['stage']:>28}: {x['syncs_per_step']:5.2f} syncs, {x['ops_per_step']:5d} ops a step")
    print(f"gpu_check 200 epochs (ResNet-32 CE, {GPU_CHECK_STEPS} steps, {ops} ops a step): about "
          f"{estimate['minutes'][0]}-{estimate['minutes'][1]} min on a launch-bound GPU; {dest}")


if __name__ == "__main__":
    main()
