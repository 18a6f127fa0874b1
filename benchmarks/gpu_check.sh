#!/usr/bin/env bash
# One GPU check in a few minutes (<= 8 on one H200): versions, the CUDA tests, ResNet-32
# training throughput at batch 128 in bf16 three ways (eager; engine.compile; engine.compile +
# engine.cuda_graphs), each as the engine's step alone and as the engine, and the wall time of a
# full 200-epoch CE run on Fashion-MNIST-LT IF 100 with CUDA graphs. JSON goes into the folder
# given (default $OUT, else benchmarks/results/gpu_check/).
#
#   bash benchmarks/gpu_check.sh [--dry-run] [OUT_DIR]
#
# --dry-run: tiny sizes on whatever device there is (CPU in CI), so the script stays working.
# The GPU machine reaches no package registry: it runs from the source tree (PYTHONPATH=src)
# with the torch it has, and Fashion-MNIST travels as .data/fashion-mnist (copy the four idx
# files there; the folder is ignored by git and carried with the working tree).
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
DEST="${1:-${OUT:-benchmarks/results/gpu_check}}"
mkdir -p "$DEST"
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DATA=""
for d in .data/fashion-mnist /usr/share/datasets/fashion-mnist "$HOME/.cache/longtail/fashion-mnist"; do
  if [ -e "$d/train-images-idx3-ubyte.gz" ] || [ -e "$d/train-images-idx3-ubyte" ]; then DATA="$d"; break; fi
done
[ -n "$DATA" ] || { echo "gpu_check: no Fashion-MNIST idx files in .data/fashion-mnist or /usr/share/datasets/fashion-mnist" >&2; exit 2; }

# compiling on a CPU takes minutes, so the dry run measures the eager step only
if [ "$DRY" = 1 ]; then
  DEVICE=auto; TP=(--batches 2 --repeats 1 --batch-size 16 --arch resnet8); MODES=(eager)
  RUN=(--set model.arch=resnet8 --set data.max_per_class=100 --set stages.stage1.epochs=1 --set engine.compile=false)
else
  DEVICE=cuda; TP=(--batches 100 --repeats 3 --batch-size 128 --arch resnet32); MODES=(eager compiled graphed)
  RUN=(--set stages.stage1.epochs=200 --set engine.compile=true --set engine.cuda_graphs=true)
fi

echo "== versions"
"$PY" - "$DEST/versions.json" <<'PY'
import json, platform, sys
import torch
v = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
     "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or platform.machine(),
     "python": platform.python_version()}
print(json.dumps(v))
open(sys.argv[1], "w").write(json.dumps(v, indent=1) + "\n")
PY

echo "== CUDA tests (skipped without CUDA)"
set +e
"$PY" -m pytest -q -p no:cacheprovider tests/test_devices.py -k "cuda or mixed_device or covered" 2>&1 | tee "$DEST/cuda_tests.txt"
TESTS_RC=${PIPESTATUS[0]}
set -e

for mode in "${MODES[@]}"; do
  echo "== throughput, $mode: the engine's step alone vs the engine"
  FLAGS=(); [ "$mode" = compiled ] && FLAGS=(--compile); [ "$mode" = graphed ] && FLAGS=(--compile --graphs)
  "$PY" benchmarks/throughput.py --device "$DEVICE" --precision auto --skip-plain --data-root "$DATA" \
    --out "$DEST/throughput_$mode.json" "${TP[@]}" "${FLAGS[@]}"
done

echo "== a full CE run (Fashion-MNIST-LT IF 100, ResNet-32, 200 epochs, CUDA graphs)"
RUNDIR="$(mktemp -d)"
START=$(date +%s.%N)
"$PY" -m longtail train configs/fashion_mnist_lt/ce.yaml --out "$RUNDIR/ce" --set data.root="$DATA" \
  --set engine.device="$DEVICE" --set engine.precision=auto \
  --set engine.threads=0 --set engine.progress=false --set engine.checkpoint_every=0 --set eval.plots=false "${RUN[@]}"
END=$(date +%s.%N)
"$PY" - "$RUNDIR/ce" "$START" "$END" "$DEST" "$TESTS_RC" "$DRY" <<'PY'
import csv, json, sys
from pathlib import Path
run, start, end, dest, rc, dry = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
m = json.loads((run / "metrics.json").read_text())
hist = list(csv.DictReader(open(run / "history.csv")))
images = sum(int(r["images"]) for r in hist)
train_s = sum(float(r["seconds"]) for r in hist)
out = {"dry_run": dry, "epochs": len(hist), "wall_s": round(end - start, 1), "train_s": round(train_s, 1),
       "images_per_s": round(images / max(train_s, 1e-9), 1), "first_epoch_s": float(hist[0]["seconds"]),
       "overall": round(m["overall"], 2), "tail": round(m["tail"], 2), "precision": m["run"].get("precision"),
       "machine": m["run"]["machine"], "torch": m["run"]["torch"], "date": m["run"]["date"]}
out["versions"] = json.loads((dest / "versions.json").read_text())
out["throughput"] = {p.stem.split("_", 1)[1]: json.loads(p.read_text()) for p in sorted(dest.glob("throughput_*.json"))}
out["run_engine"] = {"compile": m["run"].get("compile"), "cuda_graphs": m["run"].get("cuda_graphs")}
out["cuda_tests_exit_code"] = rc
(dest / "gpu_check.json").write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps({k: v for k, v in out.items() if k not in ("throughput", "versions")}, indent=1))
PY
rm -rf "$RUNDIR"
echo "gpu_check: $DEST/gpu_check.json"
exit "$TESTS_RC"
