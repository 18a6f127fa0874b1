"""Peak training memory of a config's model, estimated on a CPU and extrapolated to its batch.

For ``--arch`` at ``--size`` px, one training step (forward + backward, cross-entropy) is run
in a fresh process at two small batches, with and without activation checkpointing
(``model.checkpointing``), in fp32 and under bf16 autocast. Two measures per case:

- ``saved``: the bytes autograd keeps for the backward pass (``saved_tensors_hooks``): the
  activations, which grow with the batch and dominate at ImageNet scale;
- ``rss``: the process's peak resident memory (``ru_maxrss``), which adds the transient buffers.

The per-image slope of each between the two batches, times the images of one step (two views
per image for BNS), plus weights, gradients and two AdamW moments, is the estimate. A GPU's
allocator and cuDNN workspaces differ from the CPU's: read it as a size, not a promise.
Writes ``benchmarks/results/memory_estimate.json``. Run: ``python benchmarks/memory_estimate.py``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, torch
from longtail.models import build_model
from longtail.models.checkpointing import enable_checkpointing
arch, size, batch, ckpt, bf16 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5] == "1"
torch.set_num_threads(2)
model = build_model(arch, 1000, 3)
if ckpt:
    enable_checkpointing(model.backbone)
model.train()
x, y = torch.randn(batch, 3, size, size), torch.arange(batch) % 1000
saved = [0]
def pack(t):
    saved[0] += t.numel() * t.element_size()
    return t
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
loss.backward()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"saved": saved[0], "rss": (peak - base) * 1024, "params": sum(p.numel() for p in model.parameters())}))
"""


def measure(arch, size, batch, ckpt, bf16) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, arch, str(size), str(batch), str(int(ckpt)), str(int(bf16))],
                       capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnext50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batches", type=int, nargs=2, default=[2, 6])
    ap.add_argument("--step-images", type=int, default=2048, help="images through the network per step (BNS: 2 views x batch 1024)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/memory_estimate.json"))
    args = ap.parse_args()
    lo, hi = args.batches
    cases = {}
    for ckpt in (False, True):
        for bf16 in (False, True):
            a, b = measure(args.arch, args.size, lo, ckpt, bf16), measure(args.arch, args.size, hi, ckpt, bf16)
            per_image = {k: (b[k] - a[k]) / (hi - lo) for k in ("saved", "rss")}
            fixed = 4 * 4 * a["params"]  # fp32 weights, gradients, two AdamW moments
            name = f"{'checkpointing' if ckpt else 'plain'}_{'bf16' if bf16 else 'fp32'}"
            cases[name] = {
                "saved_mib_per_image": round(per_image["saved"] / 2**20, 1),
                "rss_mib_per_image": round(per_image["rss"] / 2**20, 1),
                "estimate_gib_at_step": round((fixed + args.step_images * max(per_image["saved"], per_image["rss"])) / 2**30, 1),
            }
            print(name, cases[name], flush=True)
    out = {"arch": args.arch, "size": args.size, "step_images": args.step_images, "batches_measured": [lo, hi],
           "cases": cases, "machine": "CPU (this benchmark needs no GPU)", "date": time.strftime("%Y-%m-%d"),
           "command": "python benchmarks/memory_estimate.py",
           "note": "estimate = 16 B x parameters + step_images x max(saved, rss) per image; transient cuDNN workspaces not included"}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
