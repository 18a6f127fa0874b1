"""Every tensor of a step on the model's device: a CPU check that catches a mixed-device batch
(the meta device stands in for a GPU), and, where CUDA exists, every method and plug-in for
one short epoch on it, with a resume (skipped without CUDA)."""

import json
from dataclasses import replace

import pytest
import torch

from conftest import die_after_epochs, write_mnist_folder
from longtail.config import load_config
from longtail.engine.trainer import Trainer
from longtail.methods.base import METHODS, Batch, Plugin, check_batch_devices

CPU = torch.device("cpu")


def test_a_mixed_device_batch_is_caught_on_cpu():
    x, y, i = torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), torch.arange(2)
    check_batch_devices(Batch(x, y, i, {"head": Batch(x, y, i)}), CPU)
    with pytest.raises(RuntimeError, match="batch.index is on meta"):
        check_batch_devices(Batch(x, y, i.to("meta")), CPU)
    with pytest.raises(RuntimeError, match="batch.y is on meta"):
        check_batch_devices(Batch(x, y, i, {"head": Batch(x, y.to("meta"), i)}), CPU)


def _pipelines():
    """(name, stages) for every method id and plug-in: representation methods alone, classifier
    methods after a CE stage, plug-ins on a base that takes them."""
    one = {"epochs": 1, "batch_size": 32}
    rep = [m for m, c in METHODS.items() if not issubclass(c, Plugin) and c.stage_defaults.get("train", "all") == "all"
           and m != "ipdpp"]
    head = [m for m, c in METHODS.items() if not issubclass(c, Plugin) and (c.stage_defaults.get("train") == "head" or m == "ipdpp")]
    out = [(m, [{**one, "method": m}]) for m in rep]
    out += [(m, [{**one, "method": "ce"}, {**one, "method": m, **({"epochs": 0} if m == "tau_norm" else {})}]) for m in head]
    out += [("ce+mixup", [{**one, "method": "ce+mixup"}]), ("ce+pif", [{**one, "method": "ce+pif"}]),
            ("bns+pif", [{**one, "method": "bns+pif"}]),
            ("crt+h2tf", [{**one, "method": "ce"}, {**one, "method": "crt+h2tf", "reinit_head": False, "backbone_bn": "train"}]),
            ("crt+bnrefresh", [{**one, "method": "ce"}, {**one, "method": "crt+bnrefresh", "backbone_bn": "frozen"}]),
            ("pih2t", [{**one, "method": "ce+pih2t"}, {**one, "method": "crt+pih2t"}])]
    return out


def test_every_method_and_plugin_is_covered():
    covered = {p for name, stages in _pipelines() for s in stages for p in s["method"].split("+")}
    assert covered == set(METHODS)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name,stages", _pipelines(), ids=[n for n, _ in _pipelines()])
def test_every_method_runs_on_cuda(name, stages, tmp_path):
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=4)
    flow = "[" + ", ".join(json.dumps(s) for s in stages) + "]"
    cfg = load_config(None, ["data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10", "data.val_per_class=2",
                             "model.arch=resnet8", "engine.device=cuda", "engine.precision=auto", "engine.progress=false",
                             "eval.plots=false", f"stages={flow}"])
    m = Trainer(cfg, tmp_path / "run", log=lambda m: None).run()
    assert 0 <= m["overall"] <= 100


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ipdpp_resumes_on_cuda(tmp_path, monkeypatch):
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=4)
    over = ["data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10", "model.arch=resnet8",
            "engine.device=cuda", "engine.progress=false", "eval.plots=false",
            "stages=[{method: ce, epochs: 1, batch_size: 32}, {method: ipdpp, epochs: 3, batch_size: 16, method_args: {redraw_every: 2}}]"]
    restore = die_after_epochs(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        Trainer(load_config(None, over), tmp_path / "run", log=lambda m: None).run()
    restore()
    assert Trainer(load_config(None, over), tmp_path / "run", resume=True, log=lambda m: None).run()["overall"] >= 0


def test_gpu_check_dry_run_writes_its_json(tmp_path):
    """benchmarks/gpu_check.sh --dry-run: the GPU script at tiny sizes on this machine."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    from longtail.data.fetch import DEBIAN_ROOT, has_files

    if not (has_files(DEBIAN_ROOT) or has_files(Path.home() / ".cache/longtail/fashion-mnist")):
        pytest.skip("needs Fashion-MNIST (make data)")
    root = Path(__file__).parents[1]
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    r = subprocess.run(["bash", str(root / "benchmarks/gpu_check.sh"), "--dry-run", str(tmp_path)], cwd=root, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = json.loads((tmp_path / "gpu_check.json").read_text())
    assert out["dry_run"] and out["epochs"] == 1 and out["images_per_s"] > 0 and out["cuda_tests_exit_code"] == 0
    assert out["versions"]["torch"] == torch.__version__
    assert {"model_only_img_s", "engine_img_s", "engine_vs_model_only"} <= set(out["throughput"]["eager"])
    assert out["run_engine"] == {"compile": False, "cuda_graphs": False}
    assert shutil.which("bash")


def test_losses_stay_float32_under_autocast():
    """bf16 autocast would run a loss's matmuls in bf16 whatever .float() its inputs get; the
    losses, PIF's class means and the cosine head compute exactly what they do in fp32."""
    from longtail.losses import balanced_softmax_loss, focal_loss, ldam_loss, ldam_margins
    from longtail.losses.bns import bns_code_loss, bns_paper_loss
    from longtail.methods.base import Method
    from longtail.methods.pih2t import class_mean_fuse
    from longtail.models.heads import CosineHead
    from longtail.engine.runtime import resolve_precision

    g = torch.Generator().manual_seed(0)
    z, v = torch.randn(32, 16, generator=g), torch.randn(32, 16, generator=g)
    y = torch.randint(0, 4, (32,), generator=g)
    logits = torch.randn(32, 4, generator=g)
    counts = [50, 20, 5, 2]
    head = CosineHead(16, 4)
    fmap = torch.randn(32, 8, 2, 2, generator=g)
    ch = torch.tensor([1, 5])
    cases = {
        "bns_code": lambda: bns_code_loss(z, y, 0.5),
        "bns_paper": lambda: bns_paper_loss(z, v, y, 0.5),
        "cosine_head": lambda: head(z),
        "ldam": lambda: ldam_loss(head(z), y, ldam_margins(counts)),
        "focal": lambda: focal_loss(logits, y, 2.0),
        "balanced_softmax": lambda: balanced_softmax_loss(logits, y, counts),
        "pif_means": lambda: class_mean_fuse(fmap, y, ch, 4),
        "ce": lambda: Method.loss(None, logits, Batch(z, y, y)),
    }
    for name, f in cases.items():
        want = f()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = f()
        assert got.dtype == torch.float32 and torch.equal(got, want), name
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp16", torch.device("cuda")) == "fp16"


def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch, tmp_path):
    from longtail.engine import runtime

    cpuinfo, cpu, detect = tmp_path / "cpuinfo", torch.device("cpu"), runtime.cpu_has_native_bf16
    for flags, native in (("fpu sse2 avx2 avx512f avx512_vnni", False), ("fpu avx512f avx512_bf16 avx512_vnni", True),
                          ("fpu amx_bf16 amx_tile amx_int8", True)):
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert detect(cpuinfo) is native
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
        monkeypatch.setenv("LONGTAIL_CPU_BF16", "1")
        assert runtime.resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
        monkeypatch.setenv("LONGTAIL_CPU_BF16", "0")  # what the test suite runs with
        assert runtime.resolve_precision("auto", cpu) == "fp32"
        assert runtime.resolve_precision("bf16", cpu) == "bf16"  # asked for, whatever the CPU
    assert detect(tmp_path / "absent") is False  # no /proc/cpuinfo (macOS, Windows): fp32


def test_auto_precision_resumes_in_the_precision_it_started_with(monkeypatch, tmp_path):
    """A run started under ``auto`` on a CPU with native bf16 and resumed on one without keeps
    training in bf16: its weights equal an uninterrupted bf16 run's."""
    from longtail.engine import runtime

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[30] * 10, n_test_per_class=4)
    over = ["data.dataset=mnist", f"data.root={root}", "data.imbalance_factor=10", "model.arch=resnet8",
            "engine.threads=2", "engine.progress=false", "eval.plots=false", "engine.precision=auto",
            "stages=[{method: ce, epochs: 2, batch_size: 32}]"]
    monkeypatch.setenv("LONGTAIL_CPU_BF16", "1")
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    Trainer(load_config(None, over), tmp_path / "whole", log=lambda m: None).run()
    assert json.loads((tmp_path / "whole/metrics.json").read_text())["run"]["precision"] == "bf16"
    restore = die_after_epochs(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        Trainer(load_config(None, over), tmp_path / "cut", log=lambda m: None).run()
    restore()
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)  # another machine
    logs = []
    Trainer(load_config(None, over), tmp_path / "cut", resume=True, log=logs.append).run()
    assert json.loads((tmp_path / "cut/metrics.json").read_text())["run"]["precision"] == "bf16"
    assert any("started in bf16 and continues in it" in m for m in logs)
    a = torch.load(tmp_path / "whole/model.pt", weights_only=True)
    b = torch.load(tmp_path / "cut/model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_prepared_images_checkpointing_and_accumulation_on_cuda(tmp_path):
    """A prepared image folder read into pinned memory, the random resized crop on the device,
    activation checkpointing and 2 micro-batches a step: one epoch each of BNS and cRT on CUDA."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(3):
        (tmp_path / "img" / f"k{c}").mkdir(parents=True)
        for i in range(16):
            Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(tmp_path / "img" / f"k{c}" / f"{i}.png")
    cfg = load_config(None, [
        "data.dataset=image_folder", f"data.root={tmp_path / 'img'}", "data.image_size=24", "data.resize=32",
        f"data.cache_dir={tmp_path / 'cache'}", "model.arch=resnet8", "model.checkpointing=true", "augment.policy=rrc",
        "engine.device=cuda", "engine.progress=false", "eval.plots=false",
        "stages=[{method: bns, epochs: 1, batch_size: 16, accumulate: 2, augment: {policy: simclr}}, "
        "{method: crt, epochs: 1, batch_size: 16, accumulate: 2}]"])
    m = Trainer(cfg, tmp_path / "run", log=lambda m: None).run()
    assert 0 <= m["overall"] <= 100


def test_busy_cores_sees_another_process_and_not_this_one():
    """A child spinning on one of this process's CPUs counts as about one busy core; this
    process's own spinning thread does not count."""
    import subprocess
    import sys
    import threading
    import time

    from longtail.engine import runtime

    if runtime.busy_cores(0.05) is None:
        pytest.skip("no /proc/stat")
    cpu = min(runtime.os.sched_getaffinity(0))
    spin = ("import os, sys, time; os.sched_setaffinity(0, {%d}); print('go', flush=True); t = time.time()\n"
            "while time.time() - t < 5: pass" % cpu)
    child = subprocess.Popen([sys.executable, "-c", spin], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "go"
        assert runtime.busy_cores(0.5) > 0.6
    finally:
        child.kill()
        child.wait()
    before = runtime.busy_cores(0.5)
    stop = time.time() + 0.6
    own = threading.Thread(target=lambda: [None for _ in iter(lambda: time.time() < stop, False)])
    own.start()
    beside_own = runtime.busy_cores(0.5)
    own.join()
    assert beside_own < before + 0.5  # the thread spun for the whole window, and is taken out


def test_crowded_threads_names_the_threads_that_fit(monkeypatch):
    from longtail.engine import runtime

    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    fit, why = runtime.crowded_threads(2, busy=1.0)
    assert fit == 1 and "about 1.0 of the 2 CPU cores busy" in why and "engine.threads=1 fits" in why
    assert runtime.crowded_threads(2, busy=0.3) is None  # a core is free for each thread
    assert runtime.crowded_threads(1, busy=2.0) is None  # one thread: nothing to wait for
    assert runtime.crowded_threads(2, busy=2.0)[0] == 1  # no core free: still at least one thread
    monkeypatch.setattr(runtime, "busy_cores", lambda: None)
    assert runtime.crowded_threads(2) is None  # nothing measured, nothing said
    cfg = load_config(None, ["engine.threads=3"]).engine
    assert runtime.cpu_threads(cfg) == 3 and runtime.cpu_threads(replace(cfg, threads=0)) == torch.get_num_threads()
    assert runtime.cpu_threads(replace(cfg, device="meta")) == 0  # not the CPU's threads


def test_a_crowded_machine_is_named_with_the_estimate_on_the_threads_that_fit(tmp_path, monkeypatch, capsys):
    from longtail.cli import main
    from longtail.engine import runtime

    monkeypatch.setattr(runtime, "crowded_threads", lambda threads: (1, f"{threads} threads, 1 core free"))
    root = write_mnist_folder(tmp_path / "m")
    assert main(["info", "configs/demo.yaml", "--set", "data.dataset=mnist", "--set", f"data.root={root}",
                 "--set", "data.imbalance_factor=10", "--set", "model.arch=resnet8"]) == 0
    out = capsys.readouterr().out
    assert "warning: 2 threads, 1 core free" in out and "  with engine.threads=1: about " in out
    assert torch.get_num_threads() == 2  # the run's own threads again after the comparison
