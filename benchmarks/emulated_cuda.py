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

With ``engine.cuda_graphs`` the backbone's forward and backward (the "backbone" part of a step's
ops: everything from the stem to the pooled features and back) replay as two CUDA graphs, one
launch each, and the short last batch is dropped (23,200 steps); what the host still launches
one by one is the rest of the step: the batch's augmentation ("data"), head, loss, gradient
norm and bookkeeping ("engine") and the fused optimiser ("optimizer"). The "after" estimate is
``steps × max((ops outside the backbone + 2) × 5-8 µs, 1-2 ms of GPU work)``.
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
GRAPHED_STEPS = 200 * (14886 // 128)  # the short last batch dropped: 116 steps an epoch
HOST_S_PER_OP = (5e-6, 8e-6)  # eager PyTorch's host time per launched op
GPU_S_PER_STEP = (1e-3, 2e-3)  # ResNet-32, batch 128, 28 px, bf16: assumed GPU work a step


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
            parts = {k: round(v / s["steps"]) for k, v in sorted(s["ops_by_part"].items())}
            rows.append({"pipeline": name, "stage": kind, "steps": s["steps"], "syncs_per_step": round(s["syncs"] / s["steps"], 2),
                         "ops_per_step": round(s["ops"] / s["steps"]), "ops_per_step_by_part": parts,
                         "ops_per_step_graphed": sum(v for k, v in parts.items() if k != "backbone") + 2,
                         "sync_lines": s["lines"], "error": r["error"], "mismatches": len(r["mismatches"])})
    r32 = next(x for x in rows if x["pipeline"] == "ce_resnet32")
    result = {"date": time.strftime("%Y-%m-%d"), "command": "python benchmarks/emulated_cuda.py", "rows": rows,
              "gpu_check_200_epochs_estimate": {
                  "eager": _estimate(GPU_CHECK_STEPS, r32["ops_per_step"], "eager PyTorch: every op launched by the host"),
                  "graphed": _estimate(GRAPHED_STEPS, r32["ops_per_step_graphed"],
                                       "engine.cuda_graphs: the backbone's forward and backward as two graph launches, the "
                                       "rest of the step eager"),
                  "gpu_ms_per_step_assumed": [1e3 * g for g in GPU_S_PER_STEP],
                  "host_us_per_op_assumed": [1e6 * h for h in HOST_S_PER_OP],
                  "note": "estimates from counted ops, not measurements (no GPU here): benchmarks/gpu_check.sh measures"}}
    result["cpu"] = cpu_ops_per_step()
    dest = ROOT / "benchmarks" / "results" / "emulated_cuda.json"
    if dest.exists():  # the measurement of the code before the GPU fixes is kept
        result["before"] = json.loads(dest.read_text()).get("before")
    dest.write_text(json.dumps(result, indent=1) + "\n")
    for x in rows:
        print(f"{x['pipeline']:>20} {x['stage']:>28}: {x['syncs_per_step']:5.2f} syncs, {x['ops_per_step']:5d} ops a step "
              f"({x['ops_per_step_graphed']} with the backbone graphed)")
    for how, e in result["gpu_check_200_epochs_estimate"].items():
        if isinstance(e, dict):
            print(f"gpu_check 200 epochs, {how}: {e['steps']} steps of {e['ops_per_step']} host ops: about "
                  f"{e['minutes'][0]}-{e['minutes'][1]} min ({e['bound']}-bound)")
    print(dest)


def cpu_ops_per_step() -> dict:
    """The same ResNet-32 CE step (bf16 autocast, batch 16) on the CPU, ops counted by a
    dispatch mode: what the host dispatches there, where PyTorch's CPU defaults (a for-loop
    optimiser, per-tensor gradient norms) differ from the CUDA path's fused and for-each ones."""
    from torch.utils._python_dispatch import TorchDispatchMode

    sys.path.insert(0, str(ROOT / "src"))
    import torch

    from longtail.config import load_config
    from longtail.engine.trainer import Trainer

    count = {"ops": 0}

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            count["ops"] += 1
            return func(*args, **(kwargs or {}))

    cfg = load_config(ROOT / "configs/demo.yaml", ["model.arch=resnet32", "data.max_per_class=100", "engine.device=cpu",
                                                  "engine.precision=bf16", "engine.progress=false", "eval.plots=false",
                                                  "stages=[{method: ce, epochs: 1, batch_size: 16}]"])
    tr = Trainer(cfg, tempfile.mkdtemp(prefix="cpu-ops-"), log=lambda m: None)
    model = tr._build_model()
    method, opt = tr._setup_stage(model, tr.stages[0])
    marks, real = [], tr._gradients

    def gradients(*args, **kwargs):
        marks.append(count["ops"])
        return real(*args, **kwargs)

    tr._gradients = gradients
    with Count():
        tr._train_epoch(model, method, opt, tr.stages[0], 0)
    windows = [b - a for a, b in zip(marks[1:-1], marks[2:])]  # after the first step, before the last
    return {"pipeline": "ce_resnet32 on the CPU (bf16, batch 16)", "steps": len(windows),
            "ops_per_step": round(sum(windows) / len(windows)), "syncs_per_step": "none: the CPU is the device",
            "torch": torch.__version__}


def _estimate(steps: int, ops: int, how: str) -> dict:
    """steps x max(host time, GPU time) at the low and the high assumption."""
    host = [ops * h for h in HOST_S_PER_OP]
    step = [max(h, g) for h, g in zip(host, GPU_S_PER_STEP)]
    return {"steps": steps, "ops_per_step": ops, "host_ms_per_step": [round(1e3 * h, 2) for h in host],
            "minutes": [round(steps * t / 60, 1) for t in step], "bound": "launch" if host[0] > GPU_S_PER_STEP[0] else "GPU",
            "how": how}


if __name__ == "__main__":
    main()
