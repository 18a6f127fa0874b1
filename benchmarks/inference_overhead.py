"""Inference cost of PI-H2T: latency of a model trained with plain CE and of one trained with
PI-H2T (CE + PIF, then cRT + H2TF), on the same batch, same machine, interleaved.

Both models come out of the engine (a short run on Fashion-MNIST-LT each, ResNet-32), are
exported to ``model.pt`` and loaded into the plain architecture, as a user deploys them. PIF
and H2TF are training-time hooks, so the ratio should be 1 within timing noise (target
1.00 ± 0.02). Timing: eval mode, no_grad, channels_last fp32 as the engine evaluates; the two
models alternate over ``--repeats`` rounds and the medians are compared.

Writes benchmarks/results/inference_overhead.json. Run: ``python benchmarks/inference_overhead.py``
(about 3 minutes on 2 CPU cores; needs the Fashion-MNIST files, ``make data``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from longtail.config import load_config
from longtail.engine.runtime import machine_description
from longtail.engine.trainer import Trainer
from longtail.models import build_model

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["data.max_per_class=600", "engine.progress=false", "eval.plots=false", "stages.0.epochs=1", "stages.1.epochs=1"]


def train_and_export(config: str, out: Path) -> torch.nn.Module:
    """Train ``config`` briefly and load its ``model.pt`` into a plain ResNet-32."""
    cfg = load_config(ROOT / config, SHORT)
    Trainer(cfg, out, log=lambda m: None).run()
    model = build_model(cfg.model.arch, 10, 1, head=cfg.model.head)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    return model.eval().to(memory_format=torch.channels_last)


@torch.no_grad()
def latency(model, x) -> float:
    t = time.perf_counter()
    model(x)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/inference_overhead.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        base = train_and_export("configs/fashion_mnist_lt/crt.yaml", Path(tmp) / "crt")
        pih2t = train_and_export("configs/fashion_mnist_lt/ce_pih2t.yaml", Path(tmp) / "pih2t")
    assert [type(m) for m in base.modules()] == [type(m) for m in pih2t.modules()]  # same architecture
    x = torch.randn(args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        base(x), pih2t(x)  # warm-up
        same_shape = base(x).shape == pih2t(x).shape
    times = {"base": [], "pih2t": []}
    for i in range(args.repeats):
        for name in (("base", "pih2t") if i % 2 == 0 else ("pih2t", "base")):
            times[name].append(latency(base if name == "base" else pih2t, x))
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "models": {"base": "configs/fashion_mnist_lt/crt.yaml (CE -> cRT)", "pih2t": "configs/fashion_mnist_lt/ce_pih2t.yaml (CE+PIF -> cRT+H2TF)"},
        "training": "1 epoch per stage, data.max_per_class=600 (the weights' values do not change the cost)",
        "batch": args.batch, "repeats": args.repeats, "input": "1x28x28, channels_last, fp32, eval, no_grad",
        "parameters": {"base": sum(p.numel() for p in base.parameters()), "pih2t": sum(p.numel() for p in pih2t.parameters())},
        "same_output_shape": same_shape,
        "base_ms_median": round(med["base"] * 1e3, 3), "pih2t_ms_median": round(med["pih2t"] * 1e3, 3),
        "ratio": round(med["pih2t"] / med["base"], 4),
        "target": "1.00 +- 0.02",
        "machine": machine_description(torch.device("cpu")), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/inference_overhead.py",
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("base_ms_median", "pih2t_ms_median", "ratio")}))


if __name__ == "__main__":
    main()
