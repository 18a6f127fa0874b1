"""Runs pipelines on the emulated CUDA device (emucuda) and writes what it saw as JSON.

    LONGTAIL_CUDA_SHIM=lib.so python tests/cuda_emulation/drive.py OUT.json WORK_DIR [PIPELINE ...]

For each pipeline: the error if it failed, the device mismatches (each with its line), and per
stage type the host syncs of every training step after the first of its epoch (the steady
state; a step's window runs from its start to the next step's start, so it includes fetching
the next batch and the optimiser step), with the lines that made them, and the ops per step,
also by part of the step (data, backbone, optimizer, engine).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parents[1] / "src")]

import emucuda  # noqa: E402  (before torch)

LOG = emucuda.install()

import torch  # noqa: E402

from conftest import die_after_epochs, write_cifar, write_mnist_folder  # noqa: E402
from longtail.config import load_config  # noqa: E402
from longtail.engine import trainer as trainer_mod  # noqa: E402
from longtail.engine.trainer import Trainer  # noqa: E402
from emu_pipelines import CE, NAMES, PIPELINES, _stages  # noqa: E402

def _data(kind: str, work: Path) -> list[str]:
    if kind == "mnist":
        root = work / "mnist"
        if not root.exists():
            write_mnist_folder(root, n_train_per_class=[40, 30, 20, 12, 8, 6, 5, 4, 3, 3], n_test_per_class=4)
        return ["data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10"]
    if kind == "cifar":
        root = work / "cifar10"
        if not root.exists():
            write_cifar(root, 10, n_train=60, n_test=20)
        return ["data.dataset=cifar10", f"data.root={root}", "data.imbalance_factor=5"]
    root = work / "folder"
    if not root.exists():
        from PIL import Image
        import numpy as np

        rng = np.random.default_rng(0)
        for split, n in (("train", 12), ("test", 3)):
            for c in range(3):
                (root / split / f"class{c}").mkdir(parents=True)
                for i in range(n - (c * 3 if split == "train" else 0)):
                    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / split / f"class{c}" / f"{i}.png")
    return ["data.dataset=image_folder", f"data.root={root}", "data.image_size=16", f"data.cache={kind == 'folder_prepared'}",
            f"data.cache_dir={work / 'cache'}", "data.workers=0"]


def _region(name: str, fn):
    """``fn`` with the log's region set to ``name`` while it runs."""
    def wrapped(*args, **kwargs):
        before, LOG.region = LOG.region, name
        try:
            return fn(*args, **kwargs)
        finally:
            LOG.region = before
    return wrapped


def _mark(kind: str) -> tuple:
    return (kind, len(LOG.syncs), LOG.ops, dict(LOG.region_ops))


def _instrument():
    """Mark each training step's start (with its stage's kind) in the log, and attribute ops to
    the parts of a step: "data" (a batch's augmentation and normalisation), "backbone" (its
    forward and, from the gradient reaching its output, its backward), "optimizer" (the
    update), "engine" (the rest: head, loss, grad norm, bookkeeping)."""
    real_epoch, real_gradients = Trainer._train_epoch, Trainer._gradients
    current = {"kind": ""}
    real_build = Trainer._build_model

    def enter(*_):
        LOG.region = "backbone"

    def leave(module, inputs, output):
        LOG.region = "engine"
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda g: enter())  # the backward reaches the backbone
        return output

    def build_model(self):
        model = real_build(self)
        model.backbone.register_forward_pre_hook(enter)
        model.backbone.register_forward_hook(leave)
        return model

    Trainer._build_model = build_model
    Trainer._prep = _region("data", Trainer._prep)
    # a backward starts in the head and loss; the backbone's output hook switches to "backbone"
    torch.Tensor.backward = _region("engine", torch.Tensor.backward)
    torch.amp.GradScaler.step = _region("optimizer", torch.amp.GradScaler.step)

    def train_epoch(self, model, method, opt, rs, epoch):
        policy = (self.cfg.augment_for(rs.cfg) or self.cfg.augment).policy
        base = rs.cfg.method.split("+")[0]
        current["kind"] = f"{base}{'+' + rs.cfg.method.split('+', 1)[1] if '+' in rs.cfg.method else ''}" \
                          f"{' (head)' if rs.train == 'head' else ''}{' simclr' if policy == 'simclr' else ''}"
        LOG.marks.append(_mark("epoch-start"))
        out = real_epoch(self, model, method, opt, rs, epoch)
        LOG.marks.append(_mark("epoch-end"))
        return out

    def gradients(self, *args, **kwargs):
        LOG.marks.append(_mark(current["kind"]))
        return real_gradients(self, *args, **kwargs)

    trainer_mod.Trainer._train_epoch = train_epoch
    trainer_mod.Trainer._gradients = gradients


def _steady_state(marks_from: int) -> dict:
    """Per stage kind: syncs and ops of each step window after an epoch's first step."""
    out: dict[str, dict] = {}
    marks = LOG.marks[marks_from:]
    for i, (kind, s0, o0, r0) in enumerate(marks):
        if kind.startswith("epoch") or i + 1 >= len(marks) or marks[i - 1][0] == "epoch-start":
            continue  # the first step of an epoch carries one-time set-up
        nxt = marks[i + 1]
        if nxt[0] == "epoch-end":
            continue  # the last window holds the epoch's own read-outs
        k = out.setdefault(kind, {"steps": 0, "syncs": 0, "ops": 0, "lines": {}, "ops_by_part": {}})
        k["steps"] += 1
        k["syncs"] += nxt[1] - s0
        k["ops"] += nxt[2] - o0
        for part, n in nxt[3].items():
            k["ops_by_part"][part] = k["ops_by_part"].get(part, 0) + n - r0.get(part, 0)
        for what, op, line in LOG.syncs[s0:nxt[1]]:
            key = f"{what} [{op}] at {line}"
            k["lines"][key] = k["lines"].get(key, 0) + 1
    return out


def run(name: str, work: Path) -> dict:
    kind, extra = PIPELINES[name] if name in PIPELINES else (None, None)
    m0, marks0 = len(LOG.mismatches), len(LOG.marks)
    result = {"error": None}
    try:
        if name == "kill_resume":
            over = _data("mnist", work) + ["model.arch=resnet8", "engine.device=cuda", "engine.progress=false", "eval.plots=false",
                                           _stages(CE, "{method: ipdpp, epochs: 3, batch_size: 16, method_args: {redraw_every: 2}}")]
            out = work / "runs" / name
            restore = die_after_epochs(None, 2)
            try:
                Trainer(load_config(None, over), out, log=lambda m: None).run()
            except KeyboardInterrupt:
                pass
            restore()
            result["metrics"] = Trainer(load_config(None, over), out, resume=True, log=lambda m: None).run()["overall"]
        elif name == "predict_export":
            import longtail

            over = _data("mnist", work) + ["model.arch=resnet8", "engine.device=cuda", "engine.progress=false", "eval.plots=false",
                                           _stages("{method: ce+pif, epochs: 1, batch_size: 16, method_args: {pif: {form: equivariant}}}")]
            out = work / "runs" / name
            Trainer(load_config(None, over), out, log=lambda m: None).run()
            on_gpu = longtail.load(out, device="cuda")
            probs = on_gpu.predict(torch.rand(3, 1, 8, 8), top_k=2)
            on_host = longtail.load(out)  # export reads the weights a GPU run saved, on the host
            on_host.export(work / "export", "pt2")
            result["predictions"] = len(probs)
        else:
            over = _data(kind, work) + ["model.arch=resnet8", "engine.device=cuda", "engine.progress=false", "eval.plots=false"] + extra
            if not any(o.startswith("engine.precision") for o in extra):
                over.append("engine.precision=bf16")
            m = Trainer(load_config(None, over), work / "runs" / name, log=lambda m: None).run()
            result["metrics"] = m["overall"]
    except Exception as e:  # noqa: BLE001 - reported, the test fails on it
        frames = [f"{Path(f.filename).name}:{f.lineno}" for f in traceback.extract_tb(e.__traceback__)][-5:]
        result["error"] = f"{type(e).__name__}: {str(e)[:400]} ({' < '.join(reversed(frames))})"
    result["mismatches"] = LOG.mismatches[m0:]
    result["steady_state"] = _steady_state(marks0)
    return result


def main() -> None:
    out, work, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:] or NAMES
    work.mkdir(parents=True, exist_ok=True)
    _instrument()
    report = {}
    for name in names:
        report[name] = run(name, work)
        out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
