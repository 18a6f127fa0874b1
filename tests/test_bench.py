"""A suite of two methods x two seeds on a tiny MNIST-format set: results files, skipping of
finished runs, and stage-1 reuse that is bit-identical to running both stages."""

import importlib
import json
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import write_mnist_folder
from longtail.bench import load_suite, run_suite
from longtail.config import load_config
from longtail.engine.checkpoint import load_checkpoint, save_checkpoint
from longtail.engine.trainer import Trainer
from longtail.errors import LongtailError

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _benchmark(name: str):
    """A script of benchmarks/ as a module (they import each other by plain name)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


STAGE1 = {"method": "ce", "epochs": 2, "batch_size": 32, "optimizer": {"lr": 0.05}}


def _write(tmp_path, root):
    common = {"data": {"dataset": "mnist", "root": str(root), "imbalance_factor": 10}, "model": {"arch": "resnet8"},
              "engine": {"threads": 2, "progress": False}, "eval": {"plots": False}}
    (tmp_path / "ce.yaml").write_text(yaml.safe_dump({**common, "stages": [STAGE1]}))
    (tmp_path / "crt.yaml").write_text(yaml.safe_dump({**common, "stages": [STAGE1, {"method": "crt", "epochs": 1, "batch_size": 32}]}))
    suite = {"suite": "tiny", "tier": "test", "seeds": [0, 1],
             "methods": {"ce": str(tmp_path / "ce.yaml"), "crt": {"config": str(tmp_path / "crt.yaml"), "reuse": "ce"}}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    return tmp_path / "suite.yaml"


def test_suite_results_skip_and_reuse(tmp_path):
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    suite = _write(tmp_path, root)
    out = run_suite(suite, tmp_path / "runs", tmp_path / "results", log=lambda m: None)
    res = json.loads((out / "results.json").read_text())
    assert [(r["method"], r["seed"]) for r in res["runs"]] == [("ce", 0), ("ce", 1), ("crt", 0), ("crt", 1)]
    for r in res["runs"]:
        assert set(r["metrics"]) >= {"overall", "head", "tail", "tail3", "ece", "per_class", "many", "medium", "few"}
        assert r["command"].startswith("longtail bench") and r["torch"] and r["machine"]
    md = (out / "results.md").read_text()
    assert "| ce | 2 |" in md and "| crt | 2 |" in md and "±" in md
    # the reused cRT equals the standalone two-stage config, bit for bit
    cfg = load_config(tmp_path / "crt.yaml", ["seed=1"])
    Trainer(cfg, tmp_path / "standalone", log=lambda m: None).run()
    a = torch.load(tmp_path / "standalone" / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "runs" / "crt" / "seed1" / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    crt_metrics = json.loads((tmp_path / "runs" / "crt" / "seed1" / "metrics.json").read_text())
    assert [s["method"] for s in crt_metrics["stages"]] == ["ce", "crt"]  # stage 1 inherited
    # a second call finds everything finished and trains nothing
    msgs = []
    run_suite(suite, tmp_path / "runs", tmp_path / "results", log=msgs.append, resume=True)
    assert "4 already finished" in msgs[0] and not any(m.startswith("[") for m in msgs)
    # ... also on other torch threads (beside another grid): how it runs, not what it is
    msgs.clear()
    run_suite(suite, tmp_path / "runs", tmp_path / "results", ["engine.threads=1"], log=msgs.append, resume=True)
    assert "4 already finished" in msgs[0] and not any(m.startswith("[") for m in msgs)
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert {r["config"]["engine"]["threads"] for r in rows} == {2}  # what they ran on, not this call's
    # a fresh checkout has results.json but no run folders: still nothing to train; drop the
    # cRT rows and they are re-made (after re-training the CE runs they reuse), to the same numbers
    import shutil

    shutil.rmtree(tmp_path / "runs")
    msgs.clear()
    run_suite(suite, tmp_path / "runs", tmp_path / "results", log=msgs.append, resume=True)
    assert "4 already finished" in msgs[0]
    kept = [r for r in res["runs"] if r["method"] == "ce"]
    (out / "results.json").write_text(json.dumps({"suite": "tiny", "runs": kept}))
    msgs.clear()
    run_suite(suite, tmp_path / "runs", tmp_path / "results", log=msgs.append, resume=True)
    assert "2 already finished" in msgs[0] and sum(m.startswith("[") for m in msgs) == 4
    assert not any(m.startswith("note:") for m in msgs)  # recorded on this very CPU
    # base rows recorded on another CPU: re-training them is flagged, as its weights can differ
    (out / "results.json").write_text(json.dumps({"suite": "tiny", "runs": [{**r, "machine": "Other CPU, 2 cores"} for r in kept]}))
    shutil.rmtree(tmp_path / "runs")
    msgs.clear()
    run_suite(suite, tmp_path / "runs", tmp_path / "results", log=msgs.append, resume=True)
    assert any(m.startswith("note: those base runs were recorded on Other CPU") for m in msgs)
    again = json.loads((out / "results.json").read_text())["runs"]
    assert [r["metrics"]["per_class"] for r in again] == [r["metrics"]["per_class"] for r in res["runs"]]


def test_seed_order_finishes_whole_seeds_first(tmp_path):
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[20] * 10, n_test_per_class=4)
    suite = _write(tmp_path, root)
    data = yaml.safe_load(suite.read_text())
    for m in ("ce.yaml", "crt.yaml"):  # one epoch a stage: the order is the point
        cfg = yaml.safe_load((tmp_path / m).read_text())
        cfg["stages"] = [{**st, "epochs": 1} for st in cfg["stages"]]
        (tmp_path / m).write_text(yaml.safe_dump(cfg))
    suite.write_text(yaml.safe_dump({**data, "order": "seed"}))
    msgs = []
    out = run_suite(suite, tmp_path / "runs", tmp_path / "results", log=msgs.append)
    assert [m.split("] ")[1].split(",")[0] for m in msgs if m.startswith("[")] == [
        "ce seed 0", "crt seed 0", "ce seed 1", "crt seed 1"]
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["method"], r["seed"]) for r in rows] == [("ce", 0), ("ce", 1), ("crt", 0), ("crt", 1)]
    suite.write_text(yaml.safe_dump({**data, "order": "random"}))
    with pytest.raises(LongtailError, match="not a grid order"):
        load_suite(suite, tmp_path / "runs")


def test_kept_bases_spare_a_fresh_checkout_the_base_runs(tmp_path):
    """keep_bases: true copies each reused run beside the results; a fresh checkout (no run
    folders) that still has runs reusing it starts from those weights, to the same numbers."""
    import shutil

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[20] * 10, n_test_per_class=4)
    suite = _write(tmp_path, root)
    suite.write_text(yaml.safe_dump({**yaml.safe_load(suite.read_text()), "keep_bases": True}))
    out = run_suite(suite, tmp_path / "runs", tmp_path / "results", log=lambda m: None)
    assert sorted(p.parent.name for p in (out / "bases").glob("ce/*/model.pt")) == ["seed0", "seed1"]
    assert not (out / "bases" / "crt").exists()  # nothing reuses cRT
    rows = json.loads((out / "results.json").read_text())["runs"]
    (out / "results.json").write_text(json.dumps({"suite": "tiny", "runs": [r for r in rows if r["method"] == "ce"]}))
    shutil.rmtree(tmp_path / "runs")
    msgs = []
    run_suite(suite, tmp_path / "runs", tmp_path / "results", log=msgs.append, resume=True)
    assert "re-training" not in msgs[0]
    assert [m.split("] ")[1].split(",")[0] for m in msgs if m.startswith("[")] == ["crt seed 0", "crt seed 1"]
    again = json.loads((out / "results.json").read_text())["runs"]
    assert [r["metrics"]["per_class"] for r in again] == [r["metrics"]["per_class"] for r in rows]
    stages = json.loads((tmp_path / "runs" / "crt" / "seed1" / "metrics.json").read_text())["stages"]
    assert [s["method"] for s in stages] == ["ce", "crt"]  # stage 1's results come from the kept metrics.json
    assert stages[0]["per_class"] == next(r for r in rows if r["method"] == "ce" and r["seed"] == 1)["metrics"]["per_class"]
    # a kept base of another config (the suite changed since) is not used: that base trains again
    for m in ("ce.yaml", "crt.yaml"):
        d = yaml.safe_load((tmp_path / m).read_text())
        d["stages"][0]["optimizer"]["lr"] = 0.02
        (tmp_path / m).write_text(yaml.safe_dump(d))
    shutil.rmtree(tmp_path / "runs")
    msgs.clear()
    run_suite(suite, tmp_path / "runs", tmp_path / "results", log=msgs.append)
    assert [m.split("] ")[1].split(",")[0] for m in msgs if m.startswith("[")][:2] == ["ce seed 0", "ce seed 1"]
    bad = tmp_path / "suite_bad.yaml"
    bad.write_text(yaml.safe_dump({**yaml.safe_load(suite.read_text()), "keep_bases": "yes"}))
    with pytest.raises(LongtailError, match="keep_bases"):
        load_suite(bad, tmp_path / "runs")


def test_an_interrupted_kept_base_continues_on_a_fresh_checkout(tmp_path, monkeypatch):
    """Ctrl-C during a reused run keeps its last checkpoint beside the results; a fresh checkout
    resumes it from there and ends where an uninterrupted grid ends."""
    import shutil

    from longtail.engine import trainer

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[20] * 10, n_test_per_class=4)
    suite = _write(tmp_path, root)
    for m in ("ce.yaml", "crt.yaml"):
        d = yaml.safe_load((tmp_path / m).read_text())
        d["stages"][0]["epochs"], d["engine"]["checkpoint_every"] = 3, 1
        (tmp_path / m).write_text(yaml.safe_dump(d))
    data = {**yaml.safe_load(suite.read_text()), "keep_bases": True, "seeds": [0]}
    suite.write_text(yaml.safe_dump(data))
    clean = run_suite(suite, tmp_path / "runs_clean", tmp_path / "clean", log=lambda m: None)
    want = json.loads((clean / "results.json").read_text())["runs"]

    real, calls = trainer.Trainer._write_history, []

    def stop_after_two_epochs(self):
        real(self)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer.Trainer, "_write_history", stop_after_two_epochs)
    msgs = []
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, tmp_path / "runs", tmp_path / "results", log=msgs.append)
    monkeypatch.setattr(trainer.Trainer, "_write_history", real)
    kept = tmp_path / "results" / "tiny" / "bases" / "ce" / "seed0"
    assert msgs[-1].startswith("interrupted: ce seed 0") and (kept / "checkpoint.pt").exists()
    assert not (kept / "model.pt").exists()
    state = load_checkpoint(kept / "checkpoint.pt")
    assert state["wall_s"] > 0  # the interrupted process's seconds; a long one's, for the check below
    save_checkpoint({**state, "wall_s": 1000.0}, kept / "checkpoint.pt", keep_previous=False)
    shutil.rmtree(tmp_path / "runs")
    out = run_suite(suite, tmp_path / "runs", tmp_path / "results", log=lambda m: None, resume=True)
    history = (tmp_path / "runs" / "ce" / "seed0" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3  # header, the two kept epochs, the one trained after the restore
    got = json.loads((out / "results.json").read_text())["runs"]
    assert [r["metrics"]["per_class"] for r in got] == [r["metrics"]["per_class"] for r in want]
    assert (kept / "model.pt").exists() and not (kept / "checkpoint.pt").exists()  # finished: weights replace it
    # its wall time counts the interrupted process's epochs as well as the resumed one
    ran = json.loads((tmp_path / "runs" / "ce" / "seed0" / "metrics.json").read_text())["run"]
    assert ran["wall_s"] == pytest.approx(1000.0 + ran["wall_s_this_process"], abs=0.1)
    assert 1000.0 <= float((tmp_path / "runs" / "ce" / "seed0" / "wall_s.txt").read_text()) < 1000.0 + 600


def test_a_method_may_run_a_subset_of_the_imbalance_factors(tmp_path):
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[20] * 10, n_test_per_class=4)
    suite = _write(tmp_path, root)
    data = yaml.safe_load(suite.read_text())
    data["imbalance_factors"] = [10, 5]
    data["methods"]["crt"]["imbalance_factors"] = [10]
    suite.write_text(yaml.safe_dump(data))
    _, runs = load_suite(suite, tmp_path / "runs")
    assert [(r.method, r.imbalance, r.seed) for r in runs] == [
        ("ce", 10, 0), ("ce", 10, 1), ("crt", 10, 0), ("crt", 10, 1), ("ce", 5, 0), ("ce", 5, 1)]
    assert all(r.cfg.data.imbalance_factor == r.imbalance for r in runs)
    for bad in ([100], 10):
        data["methods"]["crt"]["imbalance_factors"] = bad
        suite.write_text(yaml.safe_dump(data))
        with pytest.raises(LongtailError, match="drawn from the suite's imbalance_factors"):
            load_suite(suite, tmp_path / "runs")
    data["methods"]["crt"]["imbalance_factors"] = [10, 5]
    data["methods"]["ce"] = {"config": data["methods"]["ce"], "imbalance_factors": [10]}
    suite.write_text(yaml.safe_dump(data))
    with pytest.raises(LongtailError, match="at IF 5 reuses 'ce', which does not run seed 0 at IF 5"):
        load_suite(suite, tmp_path / "runs")


def test_per_class_plots_keep_rows_of_different_class_sizes_apart(tmp_path):
    from longtail.bench import write_plots

    def row(method, counts):
        return {"method": method, "seed": 0, "dataset": "fashion_mnist_lt", "imbalance_factor": 100.0,
                "class_counts": counts, "metrics": {"per_class": [50.0] * 3, "overall": 50.0, "tail": 40.0}}

    made = write_plots([row("ce", [1000, 100, 10]), row("ws_ce", [6000, 600, 60]), row("crt", [1000, 100, 10])], tmp_path)
    assert sorted(p.name for p in made) == ["per_class_1110img.png", "per_class_6660img.png"]
    assert [p.name for p in write_plots([row("ce", [1000, 100, 10])], tmp_path)] == ["per_class.png"]


def test_reuse_refuses_a_different_stage1(tmp_path):
    root = write_mnist_folder(tmp_path / "data")
    suite = _write(tmp_path, root)
    data = yaml.safe_load((tmp_path / "crt.yaml").read_text())
    data["stages"][0]["epochs"] = 3
    (tmp_path / "crt.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(LongtailError, match="cannot reuse"):
        load_suite(suite, tmp_path / "runs")


def test_html_reports_for_a_run_and_a_suite(tmp_path):
    from longtail.cli import main

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    suite = _write(tmp_path, root)
    out = run_suite(suite, tmp_path / "runs", tmp_path / "results", log=lambda m: None)
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "<table>" in page and "<td>crt</td>" in page and page.count("data:image/png;base64,") >= 2
    # the setup first, then one summary row a method, and the method x class heat map
    assert page.index("<th>training images</th>") < page.index("<h2>Summary</h2>") < page.index("method by class accuracy")
    assert "<th>shots</th><td>many &gt; 100, few &lt; 20" in page and "<th>commit</th>" in page
    run = tmp_path / "runs" / "crt" / "seed0"
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "<td>crt</td>" in page
    assert "<th>model</th><td>resnet8, linear head</td>" in page and "<summary>config.yaml</summary>" in page


@pytest.mark.slow
def test_killed_bench_finishes_only_the_missing_runs(tmp_path):
    import os
    import signal
    import subprocess
    import time

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    suite = _write(tmp_path, root)
    cmd = [sys.executable, "-m", "longtail", "bench", str(suite), "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res")]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = tmp_path / "runs" / "ce" / "seed0" / "metrics.json"
    while p.poll() is None and not first.exists():
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)  # mid-grid: one run done, the next under way
    p.wait()
    done_before = sorted(str(m.parent.relative_to(tmp_path / "runs")) for m in (tmp_path / "runs").glob("*/*/metrics.json"))
    assert 1 <= len(done_before) < 4
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # without --resume: refused
    assert refused.returncode == 2 and "--resume" in refused.stderr and "already" in refused.stderr
    r = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{len(done_before)} already finished" in r.stdout
    trained = [line for line in r.stdout.splitlines() if line.startswith("[")]
    assert len(trained) == 4 - len(done_before)
    rows = json.loads((tmp_path / "res" / "tiny" / "results.json").read_text())["runs"]
    assert sorted((x["method"], x["seed"]) for x in rows) == [("ce", 0), ("ce", 1), ("crt", 0), ("crt", 1)]


def test_sigterm_stops_a_bench_like_ctrl_c_keeping_the_base_under_way(tmp_path):
    import os
    import signal
    import subprocess
    import time

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    suite = _write(tmp_path, root)
    ce = yaml.safe_load((tmp_path / "ce.yaml").read_text())
    ce["stages"][0]["epochs"] = 50
    (tmp_path / "ce.yaml").write_text(yaml.safe_dump(ce))
    (tmp_path / "crt.yaml").write_text(yaml.safe_dump({**ce, "stages": ce["stages"] + [{"method": "crt", "epochs": 1}]}))
    suite.write_text(yaml.safe_dump({**yaml.safe_load(suite.read_text()), "keep_bases": True}))
    cmd = [sys.executable, "-m", "longtail", "bench", str(suite), "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res")]
    # started as a background job is (SIGINT ignored): SIGTERM must still stop it cleanly
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    first = tmp_path / "runs" / "ce" / "seed0" / "checkpoint.pt"
    while p.poll() is None and not first.exists():
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130 and "continue with --resume" in stderr
    assert "interrupted: ce seed 0's last checkpoint is kept" in stdout
    assert (tmp_path / "res" / "tiny" / "bases" / "ce" / "seed0" / "checkpoint.pt").exists()


def test_suites_share_run_folders_and_hide_base_only_runs(tmp_path):
    """A second suite pointing ``runs`` at the first's folders trains nothing twice;
    ``report: false`` keeps a base out of its results; per-method ``set`` makes a variant; a
    folder holding another config under the same id is refused."""
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    first = _write(tmp_path, root)
    run_suite(first, tmp_path / "runs", tmp_path / "results", log=lambda m: None)
    second = {"suite": "second", "seeds": [0, 1], "runs": str(tmp_path / "runs"),
              "methods": {"ce": {"config": str(tmp_path / "ce.yaml"), "report": False},
                          "crt_slow": {"config": str(tmp_path / "crt.yaml"), "reuse": "ce", "set": ["stages.1.optimizer.lr=0.01"]}}}
    (tmp_path / "second.yaml").write_text(yaml.safe_dump(second))
    msgs = []
    out = run_suite(tmp_path / "second.yaml", results_root=tmp_path / "results", log=msgs.append, resume=True)
    assert "2 already finished" in msgs[0] and sum(m.startswith("[") for m in msgs) == 2  # only the two variants
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["method"], r["seed"]) for r in rows] == [("crt_slow", 0), ("crt_slow", 1)]
    assert all(r["config"]["stages"][1]["optimizer"]["lr"] == 0.01 for r in rows)
    # a fresh checkout (results.json, no run folders): the unreported base is not re-trained while
    # every run reusing it is recorded; drop one row and only that seed's base is trained again
    import shutil

    shutil.rmtree(tmp_path / "runs")
    msgs.clear()
    run_suite(tmp_path / "second.yaml", results_root=tmp_path / "results", log=msgs.append, resume=True)
    assert "2 already finished, 2 unreported base run(s) not needed" in msgs[0] and not any(m.startswith("[") for m in msgs)
    (out / "results.json").write_text(json.dumps({"suite": "second", "runs": rows[:1]}))
    msgs.clear()
    run_suite(tmp_path / "second.yaml", results_root=tmp_path / "results", log=msgs.append, resume=True)
    assert "1 already finished, 1 unreported base run(s) not needed" in msgs[0]
    assert [m.split("] ")[1].split(",")[0] for m in msgs if m.startswith("[")] == ["ce seed 1", "crt_slow seed 1"]
    clash = {**second, "suite": "clash", "methods": {"ce": str(tmp_path / "crt.yaml")}}
    (tmp_path / "clash.yaml").write_text(yaml.safe_dump(clash))
    with pytest.raises(LongtailError, match="different config"):
        run_suite(tmp_path / "clash.yaml", results_root=tmp_path / "results", log=lambda m: None)


def test_imbalance_factor_axis_and_tiers(tmp_path):
    """``imbalance_factors`` makes a run folder and a results table per IF; a tier's ``epochs``
    reaches each stage by name (a stage it does not name is refused), a method's ``tiers``
    entry applies only in that tier, and a non-default tier writes to ``<suite>_<tier>``."""
    from longtail.bench import results_dir

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    common = {"data": {"dataset": "mnist", "root": str(root)}, "model": {"arch": "resnet8"},
              "engine": {"threads": 2, "progress": False}, "eval": {"plots": False}}
    s1 = {**STAGE1, "name": "stage1"}
    (tmp_path / "ce.yaml").write_text(yaml.safe_dump({**common, "stages": [s1]}))
    (tmp_path / "crt.yaml").write_text(yaml.safe_dump({**common, "stages": [s1, {"method": "crt", "name": "crt", "batch_size": 32}]}))
    suite = {"suite": "grid", "seeds": [0], "imbalance_factors": [10, 4], "tier": "quick",
             "description": "Two methods on a tiny set.",
             "tiers": {"quick": {"epochs": {"stage1": 1, "crt": 1}, "description": "Quick: one epoch a stage."},
                       "full": {"epochs": {"stage1": 3, "crt": 2}, "set": ["stages.stage1.optimizer.lr=0.02", "stages.crt.optimizer.lr=0.3"]}},
             "methods": {"ce": str(tmp_path / "ce.yaml"),
                         "crt": {"config": str(tmp_path / "crt.yaml"), "reuse": "ce", "tiers": {"full": ["stages.crt.batch_size=16"]}}}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    meta, runs = load_suite(tmp_path / "suite.yaml", tmp_path / "runs", tier="full")
    assert [r.cfg.stages[-1].epochs for r in runs] == [3, 2, 3, 2]
    assert runs[1].cfg.stages[0].optimizer.lr == 0.02 and runs[1].cfg.stages[1].batch_size == 16
    assert runs[1].cfg.stages[1].optimizer.lr == 0.3 and len(runs[0].cfg.stages) == 1  # 'crt' only where it exists
    assert runs[1].cfg.model.init == str(tmp_path / "runs" / "full" / "if10" / "ce" / "seed0")
    assert results_dir(meta, tmp_path / "res").name == "grid_full" and meta["command"].endswith("--tier full")
    with pytest.raises(LongtailError, match="no tier 'fast'"):
        load_suite(tmp_path / "suite.yaml", tier="fast")
    suite["tiers"]["quick"]["epochs"] = {"stage1": 1}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(suite))
    with pytest.raises(LongtailError, match="no epochs for stage 'crt' of method 'crt'"):
        load_suite(tmp_path / "bad.yaml")
    suite["methods"]["crt"]["tiers"] = {"fulll": ["stages.crt.batch_size=16"]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(suite))
    with pytest.raises(LongtailError, match=r"'crt' has entries for unknown tier\(s\) \['fulll'\]"):
        load_suite(tmp_path / "bad.yaml")
    with pytest.raises(LongtailError, match="names stage 'crtt', which no method"):
        load_suite(tmp_path / "suite.yaml", tier="full", extra_set=["stages.crtt.epochs=1"])

    out = run_suite(tmp_path / "suite.yaml", tmp_path / "runs", tmp_path / "res", log=lambda m: None)
    assert out.name == "grid"
    rows = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["method"], r["imbalance_factor"]) for r in rows] == [("ce", 10), ("crt", 10), ("ce", 4), ("crt", 4)]
    assert all(r["epochs"][-1] == 1 and r["tier"] == "quick" for r in rows)
    assert rows[0]["class_counts"][-1] == 4 and rows[2]["class_counts"][-1] == 10  # 40 / IF
    assert (tmp_path / "runs" / "quick" / "if4" / "crt" / "seed0" / "metrics.json").exists()
    md = (out / "results.md").read_text()
    assert md.index("Two methods on a tiny set.") < md.index("Quick: one epoch a stage.") < md.index("## mnist_lt")
    assert "## mnist_lt, imbalance factor 10" in md and "## mnist_lt, imbalance factor 4" in md and md.count("| crt | 1 |") == 2
    for f in ("per_class_mnist_lt_if10.png", "per_class_mnist_lt_if4.png", "overall_vs_if.png", "tail_vs_if.png"):
        assert (out / f).stat().st_size > 1000
    with pytest.raises(LongtailError, match="--resume"):
        run_suite(tmp_path / "suite.yaml", tmp_path / "runs", tmp_path / "res", log=lambda m: None)


@pytest.mark.parametrize("suite", sorted(p.name for p in (Path(__file__).parents[1] / "benchmarks" / "suites").glob("*.yaml")))
def test_shipped_suites_load_in_every_tier(suite, monkeypatch):
    """Every shipped suite resolves to valid configs in each of its tiers: the files exist,
    every stage gets its tier's epochs, reused stage-1 models match."""
    root = Path(__file__).parents[1]
    monkeypatch.chdir(root)
    path = Path("benchmarks/suites") / suite
    tiers = list((yaml.safe_load(path.read_text()).get("tiers") or {None: None}))
    for tier in tiers:
        meta, runs = load_suite(path, tier=tier)
        assert runs and len({r.run_dir for r in runs}) == len(runs)
        assert all(r.seed == r.cfg.seed for r in runs)


def test_plot_styles_stay_distinct_beyond_ten_series():
    """matplotlib's colour cycle repeats after ten; a 25-method figure needs 25 different lines."""
    from longtail.evaluation.plots import _styles

    styles = _styles(25)
    assert len({(st["color"], st["linestyle"], st["marker"]) for st in styles}) == 25


def test_commit_marks_edits_but_not_the_bench_results(tmp_path, monkeypatch):
    """``-dirty`` flags a changed tracked file, but not the results folder the bench itself
    rewrites after every run (else every run after the first of a grid would be flagged)."""
    import subprocess

    from longtail.bench import _git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "res").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "res" / "results.md").write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "x")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "res" / "results.md").write_text("new\n")
    assert not _git_commit(Path("res")).endswith("-dirty") and _git_commit().endswith("-dirty")
    (tmp_path / "code.py").write_text("a = 2\n")
    assert _git_commit(Path("res")).endswith("-dirty")


def test_eta_cost_and_title_of_a_suite_without_tiers(tmp_path):
    """The ETA's cost counts an epoch of a head-only stage as a quarter of a full one (a reused
    stage 1 not at all); a suite without tiers is titled by its name alone."""
    from longtail.bench import HEAD_EPOCH_COST, _cost, results_table

    root = write_mnist_folder(tmp_path / "data")
    suite = _write(tmp_path, root)
    data = yaml.safe_load(suite.read_text())
    del data["tier"]
    suite.write_text(yaml.safe_dump(data))
    meta, runs = load_suite(suite, tmp_path / "runs")
    cost = {r.method: _cost(r) for r in runs}
    assert HEAD_EPOCH_COST == 0.25 and cost == {"ce": 1 + 2, "crt": 1 + 1 * 0.25}
    assert results_table(meta, []).startswith("# tiny\n")


def test_paired_differences_match_seeds_and_imbalance_factors():
    """benchmarks/paired.py pairs rows by (IF, seed) and skips pairs one method lacks."""
    paired = _benchmark("paired")

    def row(method, imb, seed, tail):
        return {"method": method, "imbalance_factor": imb, "seed": seed, "metrics": {"tail": tail}}

    rows = [row("a", 10, 0, 50.0), row("b", 10, 0, 45.5), row("a", 10, 1, 40.0), row("b", 10, 1, 42.0),
            row("a", 100, 0, 30.0), row("b", 100, 0, 20.0), row("a", 100, 2, 10.0)]  # seed 2: no baseline row
    assert paired.paired(rows, "a", "b", "tail") == {10.0: {0: 4.5, 1: -2.0}, 100.0: {0: 10.0}}


def test_a_method_may_run_a_subset_of_the_seeds(tmp_path):
    root = write_mnist_folder(tmp_path / "data")
    suite = _write(tmp_path, root)
    data = yaml.safe_load(suite.read_text())
    data["seeds"] = [0, 1, 2]
    data["methods"]["ce_long"] = {"config": str(tmp_path / "ce.yaml"), "seeds": [0], "set": ["stages.0.epochs=3"]}
    suite.write_text(yaml.safe_dump(data))
    _, runs = load_suite(suite, tmp_path / "runs")
    assert [(r.method, r.seed) for r in runs if r.method == "ce_long"] == [("ce_long", 0)]
    assert len(runs) == 3 + 3 + 1
    data["methods"]["crt_long"] = {"config": str(tmp_path / "crt.yaml"), "reuse": "ce_long", "set": ["stages.0.epochs=3"]}
    suite.write_text(yaml.safe_dump(data))
    with pytest.raises(LongtailError, match="does not run seed 1"):
        load_suite(suite, tmp_path / "runs")
    data["methods"]["ce_long"]["seeds"] = [7]
    suite.write_text(yaml.safe_dump(data))
    with pytest.raises(LongtailError, match="drawn from the suite's seeds"):
        load_suite(suite, tmp_path / "runs")


def test_verdicts_follow_the_per_seed_signs():
    script = _benchmark("verdicts")
    decide, signs, verdicts = script.decide, script.decide_signs, script.verdicts

    assert signs([0.5, 1.0, 2.0], ">") == "holds" and signs([-0.5, -1.0], ">") == "does not"
    assert signs([0.5, -1.0, 2.0], ">") == "mixed" and signs([0.0], ">=0") == "holds"
    assert signs([0.4, -0.9], "~") == "holds" and signs([5.0, 6.0], ">=5") == "holds" and signs([4.9], ">=5") == "does not"
    # with a noise floor of 0.5: agreeing seeds must also clear it on average
    assert decide([0.6, 1.0, 2.0], ">", 0.5) == "holds" and decide([0.1, 0.2, 0.3], ">", 0.5) == "level"
    assert decide([-0.3, -0.2, -0.2], ">", 0.5) == "level" and decide([-1.0, -2.0], ">", 0.5) == "does not"
    assert decide([0.2, 0.9, 0.1], ">", 0.5) == "mixed" and decide([0.7, -0.9, 2.0], ">", 0.5) == "mixed"
    assert decide([-0.6, -1.0], "<", 0.5) == "holds" and decide([0.66], ">", 0.5) == "one seed: no verdict"
    assert decide([-0.8, 0.6, 0.8], ">=0", 1.0) == "holds" and decide([-0.8, 0.6], ">=0", 0.5) == "mixed"
    assert decide([-1.0, -2.0], ">=0", 0.5) == "does not" and decide([0.4, -0.9], "~", 0.5) == "holds"

    def row(m, s, tail, overall=50.0):
        return {"method": m, "imbalance_factor": 100.0, "seed": s, "metrics": {"tail": tail, "overall": overall, "head": 60.0}}

    rows = [row("dr", s, 30.0) for s in range(3)] + [row("dr_h2t", s, t) for s, t in enumerate((31.0, 29.0, 32.5))]
    v = {x["claim"]: x for x in verdicts(rows, 100.0, rule="floor")}
    h = v["H2TF raises tail accuracy (DR -> DR + H2T)"]
    assert h["verdict"] == "mixed" and h["diffs"] == {0: 1.0, 1: -1.0, 2: 2.5} and h["pair"] == ("dr_h2t", "dr")
    assert h["floor"] == pytest.approx(1.7559, abs=1e-4)  # dr_h2t's seed-to-seed sd (dr's is 0; the minimum 0.5)
    assert v["cRT beats CE"]["verdict"] == "not run"


def test_the_paired_rule_at_each_boundary():
    """holds / does not: every seed's sign and the mean beyond max(0.5, t(n-1) sd_d / sqrt(n));
    level: |mean| < 0.5 and every |d| < 1; mixed otherwise; one seed: no verdict."""
    script = _benchmark("verdicts")
    decide = script.decide_paired
    # t(2) = 2.920: three seeds +1, +2, +3 (sd 1): bound 2.920 / sqrt(3) = 1.686; mean 2 clears it
    assert script.paired_bound([1.0, 2.0, 3.0]) == pytest.approx(2.920 / 3 ** 0.5)
    assert decide([1.0, 2.0, 3.0], ">") == ("holds", pytest.approx(1.6859, abs=1e-4))
    # mean 1.0 with the same sd: the bound 1.686 is not cleared although every seed agrees
    assert decide([0.01, 1.0, 1.99], ">")[0] == "mixed"
    # the DR tail row the floor rule called mixed: agreeing seeds, small spread -> the margin is 0.5
    assert decide([-1.30, -1.00, -1.58], "<") == ("holds", 0.5) and decide([-1.30, -1.00, -1.58], ">")[0] == "does not"
    # the minimum margin: every seed agrees, but a mean of 0.4 is within 0.5 -> level; 0.5 exactly is
    # neither above the margin nor below 0.5 -> mixed; 0.6 holds
    assert decide([0.3, 0.4, 0.5], ">")[0] == "level" and decide([0.4, 0.5, 0.6], ">")[0] == "mixed"
    assert decide([0.5, 0.6, 0.7], ">")[0] == "holds"
    # level needs |mean| < 0.5 and every seed within 1: one seed at 1.0 makes it mixed
    assert decide([-0.3, 0.2, 0.4], ">")[0] == "level" and decide([-1.0, 0.2, 0.4], ">")[0] == "mixed"
    assert decide([0.66], ">") == ("one seed: no verdict", None)
    # not below: mean - bound > -0.5; does not: every seed below and the mean beyond the margin
    assert decide([-0.2, 0.1, 0.0], ">=0")[0] == "holds" and decide([-0.8, 0.6, -0.9], ">=0")[0] == "mixed"
    assert decide([-1.0, -2.0, -1.5], ">=0")[0] == "does not"
    # within one point: |mean| + bound < 1
    assert decide([0.2, -0.1, 0.1], "~")[0] == "holds" and decide([0.9, -0.9, 0.5], "~")[0] == "mixed"
    assert decide([5.5, 6.0, 6.5], ">=5")[0] == "holds" and decide([4.0, 4.5, 4.2], ">=5")[0] == "does not"
    # a metric without the 0.5 minimum (the geometry distance): the bound alone
    assert decide([0.1, 0.2, 0.15], ">", 0.0)[0] == "holds"


def test_geometry_claims_read_intra_class_distance(tmp_path):
    script = _benchmark("verdicts")
    geometry_rows, verdicts = script.geometry_rows, script.verdicts

    geo = [{"method": m, "seed": s, "intra": x} for m, xs in (("ce", (0.10, 0.12)), ("ce_pif", (0.08, 0.13)),
                                                             ("bns_repr", (0.05, 0.06))) for s, x in enumerate(xs)]
    (tmp_path / "g.json").write_text(json.dumps({"rows": geo}))
    v = {x["claim"]: x for x in verdicts(geometry_rows(tmp_path / "g.json"), 100.0, rule="floor")}
    pif = v["PIF (class-mean, ours) tightens classes (CE)"]  # lower is tighter: seed 0 agrees, seed 1 does not, both within
    assert pif["verdict"] == "level" and pif["diffs"] == pytest.approx({0: -2.0, 1: 1.0})  # ce_pif's sd 3.5
    # the paired rule reads the differences themselves: -2 and +1 disagree beyond a point
    v = {x["claim"]: x for x in verdicts(geometry_rows(tmp_path / "g.json"), 100.0)}
    assert v["PIF (class-mean, ours) tightens classes (CE)"]["verdict"] == "mixed"
    assert v["BNS tightens classes (Thm 4.1): intra-class distance below CE's"]["verdict"] == "holds"


@pytest.mark.parametrize("claims, suite", [("authors", "fashion_mnist_lt_pih2t_authors"),
                                           ("controls", "fashion_mnist_lt_pih2t_controls"),
                                           ("stability", "fashion_mnist_lt_pif_stability"),
                                           ("capacity", "fashion_mnist_lt_bns_capacity")])
def test_every_claim_names_methods_of_its_suite(claims, suite):
    """A claim whose method id is misspelt would read "not run" for ever: every id of a claim set
    is a method of the suite it reads (or a row derived from two of them)."""
    script = _benchmark("verdicts")
    methods = set(yaml.safe_load((BENCHMARKS / "suites" / f"{suite}.yaml").read_text())["methods"])
    methods |= set(script.DERIVED.get(claims, {}))
    for claim, _, _, pairs in script.CLAIM_SETS[claims]:
        for a, b in pairs:
            assert {a, b} <= methods, (claim, {a, b} - methods)


def test_verdict_table_leaves_converged_only_claims_out_of_the_5_epoch_column(tmp_path, capsys):
    script = _benchmark("verdicts")
    rows = [{"method": m, "imbalance_factor": 100.0, "seed": 0, "metrics": {"tail": t, "overall": 70.0, "head": 80.0}}
            for m, t in (("ce", 60.0), ("crt", 70.0), ("bns_ipdpp", 50.0), ("bns1000_ipdpp", 65.0), ("ws_ce", 0.0), ("ws_crt", 0.0))]
    for name in ("conv", "five"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"runs": rows}))
    script.main([str(tmp_path / "conv"), "--five-epoch", str(tmp_path / "five")])
    lines = {ln.split(" | ")[0].lstrip("| "): ln for ln in capsys.readouterr().out.splitlines()}
    one = "one seed: no verdict"
    assert f"| — | — | {one} | bns1000_ipdpp − ce: +5.0" in lines["BNS (1,000 epochs) + IP-DPP beats CE on tail accuracy"]
    assert f"| {one} | bns_ipdpp − ce: -10.0" in lines["BNS + IP-DPP beats CE on tail accuracy"]
    assert f"| — | — | {one} | ws_crt − ws_ce: +0.0" in lines["cRT beats CE (whole set)"]
    assert lines["cRT beats CE"].split(" | ")[2] == one  # its 5-epoch column is filled


def test_five_epoch_geometry_files_fill_claims_in_order(tmp_path, capsys):
    """Several --five-epoch-geometry files: per claim the first holding its rows decides, and
    the cell names the file (a suite's own file by its folder)."""
    script = _benchmark("verdicts")
    (tmp_path / "conv").mkdir()
    (tmp_path / "conv" / "results.json").write_text(json.dumps({"runs": []}))
    (tmp_path / "five").mkdir()
    (tmp_path / "five" / "results.json").write_text(json.dumps({"runs": []}))
    first = tmp_path / "results" / "feature_geometry.json"
    second = tmp_path / "fill_suite" / "feature_geometry.json"
    for path, rows in ((first, (("ce", 0.10), ("ce_pif", 0.08))),
                       (second, (("ce", 0.50), ("ce_pif", 0.90), ("ldam_drw", 0.10), ("ldam_drw_pif", 0.12)))):
        path.parent.mkdir()
        path.write_text(json.dumps({"rows": [{"method": m, "seed": 0, "intra": x} for m, x in rows]}))
    script.main([str(tmp_path / "conv"), "--five-epoch", str(tmp_path / "five"), "--five-epoch-geometry", str(first), str(second)])
    lines = {ln.split(" | ")[0].lstrip("| "): ln for ln in capsys.readouterr().out.splitlines()}
    assert "| one seed: no verdict | ce_pif − ce: -2.0 (mean -2.00) [feature_geometry] |" in lines["PIF (class-mean, ours) tightens classes (CE)"]
    assert "| one seed: no verdict | ldam_drw_pif − ldam_drw: +2.0 (mean +2.00) [fill_suite/feature_geometry] |" in \
        lines["PIF (class-mean, ours) tightens classes (LDAM-DRW)"]


def test_plot_converged_summarises_and_draws(tmp_path):
    plot_converged = _benchmark("plot_converged")

    counts = [100, 50, 20, 10]
    rows = [{"method": m, "seed": s, "imbalance_factor": 100.0, "class_counts": counts,
             "config": {"data": {"dataset": "fashion_mnist", "imbalance_factor": 100.0, "max_per_class": 1000},
                        "model": {"arch": "resnet8"}},
             "metrics": {"head": h + s, "tail": t - s, "overall": (h + t) / 2, "per_class": [h, h, t, t]}}
            for m, h, t in (("ce", 90.0, 60.0), ("bns_crt", 80.0, 70.0), ("ws_ce", 95.0, 50.0)) for s in range(2)]
    (tmp_path / "results.json").write_text(json.dumps({"runs": rows}))
    s = plot_converged.summary([r for r in rows if r["method"] == "ce"])
    assert s["ce"]["head"][0] == pytest.approx(90.5) and s["ce"]["tail"][1] == pytest.approx(0.5 ** 0.5)
    assert plot_converged.family("bns_crt") == "BNS stage 1" and plot_converged.family("ce_mixup").startswith("CE + mixup")
    assert plot_converged.setup_title(rows[:2], [0, 1]) == "fashion_mnist IF 100, at most 1,000 images a class, resnet8, seeds 0, 1"
    other = {**rows[1], "config": {**rows[1]["config"], "model": {"arch": "resnet32"}}}
    assert "resnet8" not in plot_converged.setup_title([rows[0], other], [0, 1])
    assert plot_converged.family("ws_bns_crt") == "BNS stage 1"
    plot_converged.main(tmp_path)
    for name in ("head_tail", "per_class_heatmap", "head_tail_whole_set", "per_class_heatmap_whole_set"):
        assert (tmp_path / f"{name}.png").stat().st_size > 0, name


def test_suite_overrides_that_apply_nowhere_are_logged_and_recorded(tmp_path):
    """A suite-wide key naming a stage that a method's config lacks (stages.stage1.* on a config
    whose stage is named h2t_stage1) does not apply there: the bench says so for that run and its
    results row lists the keys."""
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[20] * 10, n_test_per_class=3)
    common = {"data": {"dataset": "mnist", "root": str(root), "imbalance_factor": 10}, "model": {"arch": "resnet8"},
              "engine": {"threads": 2, "progress": False}, "eval": {"plots": False}}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({**common, "stages": [{**STAGE1, "name": "stage1"}]}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({**common, "stages": [{**STAGE1, "name": "h2t_stage1"}]}))
    suite = {"suite": "tiny", "seeds": [0], "set": ["stages.stage1.epochs=1"],
             "methods": {"a": str(tmp_path / "a.yaml"), "b": str(tmp_path / "b.yaml")}}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    lines = []
    out = run_suite(tmp_path / "suite.yaml", tmp_path / "runs", tmp_path / "res", log=lines.append)
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert rows["a"]["epochs"] == [1] and "unapplied_overrides" not in rows["a"]
    assert rows["b"]["epochs"] == [2] and rows["b"]["unapplied_overrides"] == ["stages.stage1.epochs=1"]
    note = [ln for ln in lines if "do not apply" in ln]
    assert len(note) == 1 and "its stages: h2t_stage1" in note[0] and "stages.stage1.epochs=1" in note[0]


def test_suite_on_an_imbalanced_test_set_leads_with_balanced_accuracy(tmp_path):
    """An image folder's split keeps the classes' imbalance in the test set: the suite's rows,
    results.md and HTML report carry balanced accuracy first (absent for balanced test sets)."""
    from PIL import Image
    import numpy as np

    from longtail.evaluation.html import suite_report

    for c, n in enumerate((20, 8, 4)):
        (tmp_path / "photos" / f"k{c}").mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 40 + 90 * c, np.uint8), "L").save(tmp_path / "photos" / f"k{c}" / f"{i}.png")
    cfg = {"data": {"dataset": "image_folder", "root": str(tmp_path / "photos"), "test_fraction": 0.25},
           "model": {"arch": "resnet8"}, "engine": {"progress": False}, "eval": {"plots": False}, "stages": [STAGE1]}
    (tmp_path / "ce.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({"suite": "folder", "seeds": [0], "methods": {"ce": str(tmp_path / "ce.yaml")}}))
    out = run_suite(tmp_path / "suite.yaml", tmp_path / "runs", tmp_path / "res", log=lambda m: None)
    row = json.loads((out / "results.json").read_text())["runs"][0]
    assert list(row["metrics"])[:2] == ["balanced", "overall"]
    assert "| method | seeds | balanced | overall |" in (out / "results.md").read_text()
    assert "<th>balanced</th>" in suite_report(out)


def test_eta_prices_each_method_at_its_own_measured_time(tmp_path):
    """A grid of a dear and a cheap method: the ETA prices each remaining run at the seconds per
    cost unit its own method took (a finished seed), not at one average over every run."""
    from longtail.bench import _cost, _eta, _measured

    root = write_mnist_folder(tmp_path / "data")
    meta, runs = load_suite(_write(tmp_path, root), tmp_path / "runs")
    by = {(r.method, r.seed): r for r in runs}
    assert (_cost(by[("ce", 0)]), _cost(by[("crt", 0)])) == (3, 1.25)
    for method, wall in (("ce", 600.0), ("crt", 6.0)):  # seed 0 of each has finished
        d = by[(method, 0)].run_dir
        d.mkdir(parents=True)
        (d / "metrics.json").write_text("{}")
        (d / "wall_s.txt").write_text(f"{wall}\n")
    known = _measured(runs, {})
    assert known == {("ce", None): (600.0, 3), ("crt", None): (6.0, 1.25)}
    assert _eta([by[("ce", 1)], by[("crt", 1)]], known) == ", ETA 10 min"  # 600 s + 6 s
    assert _eta([by[("crt", 1)]] * 60, known) == ", ETA 6 min"  # one average rate would say 178 min
    assert _eta([by[("crt", 1)]], {}) == ""  # nothing measured yet
    assert _eta([by[("ce", 1)], by[("crt", 1)]], known, jobs=2) == ", ETA 5 min"  # two runs at once share it
    assert _eta([by[("ce", 1)]], {("other", None): (606.0, 4.25)}) == ", ETA 7 min"  # the grid's rate: 606 / 4.25 x 3 s


def test_a_crowded_machine_is_named_before_the_grid_starts(tmp_path, monkeypatch):
    from longtail.engine import runtime

    asked = []
    monkeypatch.setattr(runtime, "crowded_threads", lambda threads: asked.append(threads) or (1, "one core is free"))
    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[10] * 10, n_test_per_class=2)
    suite = _write(tmp_path, root)
    data = {**yaml.safe_load(suite.read_text()), "seeds": [0]}
    data["methods"] = {"ce": data["methods"]["ce"]}
    suite.write_text(yaml.safe_dump(data))
    msgs = []
    run_suite(suite, tmp_path / "runs", tmp_path / "results", log=msgs.append)
    assert asked == [2] and msgs[1] == "warning: one core is free" and msgs[2].startswith("[1/1] ce")


def test_a_failed_row_does_not_stop_the_grid(tmp_path, monkeypatch, capsys):
    """One method's loss turns non-finite: its rows are recorded as failed (error, stage, epoch,
    last good checkpoint), a row reusing it is skipped with the reason, every other row runs, the
    exit status counts the failures, and --resume leaves them unless --retry-failed."""
    from longtail.cli import main
    from longtail.methods.baselines import Focal

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    suite_file = _write(tmp_path, root)
    suite = yaml.safe_load(suite_file.read_text())
    focal = yaml.safe_load((tmp_path / "ce.yaml").read_text())
    focal["stages"][0] = {**focal["stages"][0], "method": "focal", "epochs": 2}
    (tmp_path / "focal.yaml").write_text(yaml.safe_dump(focal))
    focal_crt = {**focal, "stages": [focal["stages"][0], {"method": "crt", "epochs": 1, "batch_size": 32}]}
    (tmp_path / "focal_crt.yaml").write_text(yaml.safe_dump(focal_crt))
    suite["seeds"] = [0]
    suite["methods"].update({"focal": str(tmp_path / "focal.yaml"),
                             "focal_crt": {"config": str(tmp_path / "focal_crt.yaml"), "reuse": "focal"}})
    suite_file.write_text(yaml.safe_dump(suite))
    real, real_start = Focal.loss, Focal.on_epoch_start

    def start(self, epoch):
        self.epoch = epoch
        real_start(self, epoch)

    def diverge(self, logits, batch):  # the second epoch turns non-finite
        loss = real(self, logits, batch)
        return loss * float("nan") if self.ctx.model.training and getattr(self, "epoch", 0) >= 1 else loss

    monkeypatch.setattr(Focal, "on_epoch_start", start)
    monkeypatch.setattr(Focal, "loss", diverge)
    args = ["bench", str(suite_file), "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res")]
    assert main(args) == 1  # one run failed
    out = capsys.readouterr().out
    assert "FAILED: focal seed 0: loss is nan at stage 'stage1' (focal), epoch 2" in out
    assert "skipped: it starts from focal seed 0, which failed" in out
    res = tmp_path / "res" / "tiny"
    rows = {r["method"]: r for r in json.loads((res / "results.json").read_text())["runs"]}
    assert set(rows) == {"ce", "crt", "focal"} and rows["ce"]["metrics"]["overall"] > 0 and rows["crt"]["metrics"]["overall"] > 0
    f = rows["focal"]["failed"]
    assert (f["stage"], f["epoch"]) == ("stage1", 2) and f["checkpoint"].endswith("checkpoint.pt") and rows["focal"]["metrics"] == {}
    md = (res / "results.md").read_text()
    assert "## Failed runs" in md and "| focal | 10 | 0 | stage1 | 2 | loss is nan" in md
    # resumed: the failed run is left as it is, and said so
    assert main(args + ["--resume"]) == 1
    assert "1 run(s) failed earlier and are left as they are" in capsys.readouterr().out
    # after the fix, --retry-failed continues it from its last good checkpoint (epoch 1)
    monkeypatch.setattr(Focal, "loss", real)
    assert main(args + ["--resume", "--retry-failed"]) == 0
    rows = {r["method"]: r for r in json.loads((res / "results.json").read_text())["runs"]}
    assert set(rows) == {"ce", "crt", "focal", "focal_crt"} and not any(r.get("failed") for r in rows.values())


def test_published_numbers_join_by_data_set_if_method_and_backbone(tmp_path, monkeypatch):
    """results.md sets a row beside its published number when data set, IF, method and backbone
    all agree; a method without a number gets dashes; another backbone never joins."""
    from longtail.bench import results_table
    from longtail.evaluation import published

    pub = tmp_path / "published.yaml"
    pub.write_text(yaml.safe_dump([
        {"dataset": "cifar100_lt", "imbalance_factor": 100, "method": "ce", "backbone": "resnet32", "epochs": 200,
         "top1": 38.3, "paper": "Cao et al., NeurIPS 2019", "table": "Table 2"},
        {"dataset": "cifar100_lt", "imbalance_factor": 100, "method": "bns_ipdpp", "backbone": "resnet34_cifar",
         "top1": 52.4, "paper": "BNS", "table": "README"}]))
    monkeypatch.setattr(published, "DEFAULT", pub)

    def row(method, seed, overall, arch):
        return {"method": method, "dataset": "cifar100_lt", "imbalance_factor": 100.0, "seed": seed,
                "metrics": {"overall": overall, "tail": 10.0}, "config": {"model": {"arch": arch}}, "machine": "m",
                "torch": "t", "commit": "c", "date": "2026-12-06", "wall_s": 1.0}

    rows = [row("ce", 0, 37.9, "resnet32"), row("ce", 1, 38.5, "resnet32"), row("crt", 0, 41.0, "resnet32"),
            row("bns_ipdpp", 0, 50.0, "resnet32")]  # BNS on ResNet-32: not the published ResNet-34 setting
    md = results_table({"suite": "s", "tier": "", "command": "longtail bench s.yaml"}, rows)
    lines = {ln.split(" | ")[0].lstrip("| "): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert lines["method"].endswith("| published | ours − published |")
    assert lines["ce"].endswith("| 38.3 | -0.1 |")
    assert lines["crt"].endswith("| — | — |") and lines["bns_ipdpp"].endswith("| — | — |")
    assert "- `ce`: 38.20 against 38.30 (Cao et al., NeurIPS 2019, Table 2; resnet32, 200 epochs): within 1 point" in md
    assert "bns_ipdpp`:" not in md
    assert published.reproduction(36.0, 38.3) == "below by 2.3" and published.reproduction(40.0, 38.3) == "above by 1.7"
    # a suite with no published number has no such columns
    plain = results_table({"suite": "s", "tier": "", "command": "c"}, [row("crt", 0, 41.0, "resnet32")])
    assert "published" not in plain


def test_plan_lists_runs_reuse_and_cost_without_training(tmp_path, capsys, monkeypatch):
    from longtail.cli import main

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    suite = _write(tmp_path, root)
    monkeypatch.setattr("longtail.engine.trainer.Trainer.run", lambda self: pytest.fail("trained"))
    def epoch(trainer, steps=3, counts=None):  # an epoch: 10 s; a step 1,000 ops and 1 TFLOP, 2 steps an epoch
        counts.update(ops=1000, flops=1e12, steps=2, engine_ops=0)  # (the engine's own step: nothing to add)
        return 10.0

    monkeypatch.setattr("longtail.engine.cost.epoch_seconds", epoch)
    assert main(["bench", str(suite), "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "suite tiny (test tier): 4 runs, 2 methods" in out and "  ce -> crt" in out
    # ce: 2 runs x (2 epochs + 1 for evaluation) x 10 s = 60 s; crt: 2 x (1 head epoch x 0.25 + 1) x 10 s = 25 s
    assert "| ce | 2 | 2 | 10.0 s | 0.02 h |" in out and "| crt | 2 | 2+1 | 10.0 s | 0.01 h |" in out
    assert "total: about 0.0 h on this machine for the 4 of 4 runs timed" in out
    # on the assumed GPU a step is the longer of 1e12 / (989e12 x 0.4) = 2.53 ms and 1,000 x 6 us = 6 ms:
    # launch-bound, 12 ms an epoch of 2 steps; ce: 2 runs x 3 epochs' worth = 72 ms
    assert "| 1000 ops, 1000.0 GFLOP a step | 0.01 s | 0.00 h |" in out and "GPU-hours, estimated from one training step" in out
    assert not (tmp_path / "res").exists()


def test_local_launcher_gives_the_sequential_rows_bit_for_bit(tmp_path, capsys):
    """--launcher local --jobs 2 (two runs at once, one thread each, a reusing run after its base)
    records the same metrics, per class and overall, as the sequential grid on one thread."""
    from longtail.cli import main

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    suite = _write(tmp_path, root)
    common = ["bench", str(suite), "--set", "engine.threads=1"]
    assert main(common + ["--runs", str(tmp_path / "seq_runs"), "--results", str(tmp_path / "seq")]) == 0
    assert main(common + ["--runs", str(tmp_path / "par_runs"), "--results", str(tmp_path / "par"),
                          "--launcher", "local", "--jobs", "2"]) == 0
    seq, par = (json.loads((tmp_path / d / "tiny" / "results.json").read_text())["runs"] for d in ("seq", "par"))
    key = lambda r: (r["method"], r["seed"])  # noqa: E731
    assert sorted(map(key, seq)) == sorted(map(key, par)) == [("ce", 0), ("ce", 1), ("crt", 0), ("crt", 1)]
    by = {key(r): r for r in par}
    for r in seq:
        assert r["metrics"] == by[key(r)]["metrics"], key(r)
    capsys.readouterr()
    assert main(["bench", str(suite), "--jobs", "2"]) == 2  # several at once needs the local launcher
    assert "add --launcher local" in capsys.readouterr().err


def test_submitit_local_executor_gives_the_sequential_rows_and_collects_later(tmp_path, capsys):
    """--launcher slurm with submitit's local executor: a job a run, the reusing run after its
    base, the same metrics bit for bit as the sequential grid; without --wait the command
    returns once the jobs are submitted, and a later --resume records their rows."""
    pytest.importorskip("submitit")
    from longtail.cli import main

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    suite = _write(tmp_path, root)
    common = ["bench", str(suite), "--set", "engine.threads=1"]
    assert main(common + ["--runs", str(tmp_path / "seq_runs"), "--results", str(tmp_path / "seq")]) == 0
    sub = common + ["--runs", str(tmp_path / "sub_runs"), "--results", str(tmp_path / "sub"), "--launcher", "slurm",
                    "--slurm", "cluster=local", "--slurm", "poll_s=0.2"]
    capsys.readouterr()
    assert main(sub + ["--wait"]) == 0
    out = capsys.readouterr().out
    assert out.count("submitted as job") == 4 and "waiting for 4 job(s) on local" in out
    seq, par = (json.loads((tmp_path / d / "tiny" / "results.json").read_text())["runs"] for d in ("seq", "sub"))
    key = lambda r: (r["method"], r["seed"])  # noqa: E731
    assert sorted(map(key, par)) == [("ce", 0), ("ce", 1), ("crt", 0), ("crt", 1)]
    by = {key(r): r for r in par}
    for r in seq:
        assert r["metrics"] == by[key(r)]["metrics"], key(r)
    assert all(r["wall_s"] > 0 for r in par)
    # without --wait: submitted, then collected by a later --resume
    fresh = common + ["--runs", str(tmp_path / "late_runs"), "--results", str(tmp_path / "late"), "--launcher", "slurm",
                      "--slurm", "cluster=local", "--slurm", "poll_s=0.2"]
    suite_data = yaml.safe_load(suite.read_text())
    suite_data["seeds"] = [0]
    suite.write_text(yaml.safe_dump(suite_data))
    assert main(fresh) == 0
    out = capsys.readouterr().out
    assert "--resume` (any time) records the finished rows" in out
    import longtail.launchers as launchers

    book = launchers.JobBook(tmp_path / "late_runs")
    for entry in book.jobs.values():  # the jobs end on their own
        while launchers.job_alive("local", entry["id"]):
            time.sleep(0.2)
    assert main(fresh + ["--resume"]) == 0
    rows = json.loads((tmp_path / "late" / "tiny" / "results.json").read_text())["runs"]
    assert sorted(map(key, rows)) == [("ce", 0), ("crt", 0)]
    assert rows[0]["metrics"] == by[("ce", 0)]["metrics"]
    # the keys are checked before anything is submitted
    capsys.readouterr()
    assert main(sub + ["--slurm", "partiton=gpu"]) == 2
    assert "unknown slurm key(s) ['partiton']" in capsys.readouterr().err
    assert main(common + ["--slurm", "partition=gpu"]) == 2
    assert "add --launcher slurm" in capsys.readouterr().err


def test_a_step_is_counted_op_by_op_and_flop_by_flop():
    """The GPU estimate's counts: one aten op a kernel, 2 m n k floating-point operations a
    matrix product; a step's time is the longer of its arithmetic and its launches."""
    from longtail.engine.cost import GPU_ASSUMED, counted, gpu_step_seconds

    a, b = torch.ones(2, 4), torch.ones(4, 3)
    assert counted(lambda: (a @ b).relu()) == (2, 2 * 2 * 4 * 3)
    w = torch.ones(4, 3, requires_grad=True)
    ops, flops = counted(lambda: (a @ w).sum().backward())
    assert flops == 3 * 48 - 48 and ops >= 4  # forward and the weight's gradient (a needs none)
    per_op = GPU_ASSUMED["us_per_op"] * 1e-6
    assert gpu_step_seconds(9, 0.0) == pytest.approx((9 + GPU_ASSUMED["engine_ops"]) * per_op)
    assert gpu_step_seconds(9, 0.0, engine_ops=0) == pytest.approx(9 * per_op)  # a count of the engine's own step
    big = 1e15
    assert gpu_step_seconds(9, big) == pytest.approx(big / (GPU_ASSUMED["peak_tflops"] * 1e12 * GPU_ASSUMED["utilisation"]))


@pytest.mark.parametrize("claims,suite", [("authors", "fashion_mnist_lt_pih2t_authors"),
                                          ("controls", "fashion_mnist_lt_pih2t_controls")])
def test_every_claim_names_rows_its_suite_reports(claims, suite):
    """A claim whose row id is not a reported method of its suite would read "not run" for ever."""
    verdicts = _benchmark("verdicts")
    meta, runs = load_suite(BENCHMARKS / "suites" / f"{suite}.yaml")
    reported = {r.method for r in runs if r.report}
    for claim, metric, _, pairs in verdicts.CLAIM_SETS[claims]:
        for a, b in pairs:
            if metric.startswith(("intra", "ratio")):
                continue  # geometry rows come from feature_geometry.py's files
            assert {a, b} <= reported, (claim, {a, b} - reported)


def test_the_results_index_lists_every_claim_of_the_studies():
    """docs/results/README.md's claim list is the studies' verdict tables, one line a claim, in
    date: `python benchmarks/results_index.py --check` fails when a table changed without it."""
    index = _benchmark("results_index")
    assert index.main(["--check"]) == 0, "run python benchmarks/results_index.py"
    lines = index.claim_lines()
    assert any(ln.startswith("| PI-H2T adds to DR | overall | holds (3) | +1.61 |") for ln in lines)
    assert any("pih2t_controls.md" in ln for ln in lines) and any("bns_capacity.md" in ln for ln in lines)
    # a continued claim carries its subject
    assert any(ln.startswith("| BNS + IP-DPP beats CE on tail accuracy, without losing overall accuracy to CE |") for ln in lines)


def test_a_failed_row_under_the_local_launcher(tmp_path, capsys):
    """A worker's run that diverges is recorded as failed with its error, stage and epoch (the
    error crosses the process boundary intact), the run reusing it is skipped, the rest run."""
    from longtail.cli import main

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    suite_file = _write(tmp_path, root)
    suite = yaml.safe_load(suite_file.read_text())
    bad = yaml.safe_load((tmp_path / "crt.yaml").read_text())
    bad["stages"][0]["optimizer"] = {"lr": 1e12}  # diverges in its first epoch
    (tmp_path / "bad_crt.yaml").write_text(yaml.safe_dump(bad))
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**bad, "stages": bad["stages"][:1]}))
    suite["seeds"] = [0]
    suite["methods"].update({"bad": str(tmp_path / "bad.yaml"), "bad_crt": {"config": str(tmp_path / "bad_crt.yaml"), "reuse": "bad"}})
    suite_file.write_text(yaml.safe_dump(suite))
    args = ["bench", str(suite_file), "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "res"),
            "--set", "engine.threads=1", "--launcher", "local", "--jobs", "2"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAILED: bad seed 0: loss is" in out and "skipped: it starts from bad seed 0, which failed" in out
    rows = {r["method"]: r for r in json.loads((tmp_path / "res" / "tiny" / "results.json").read_text())["runs"]}
    assert set(rows) == {"ce", "crt", "bad"} and rows["bad"]["failed"]["stage"] == "stage1"
    assert rows["ce"]["metrics"]["overall"] > 0 and rows["crt"]["metrics"]["overall"] > 0


def test_pif_stability_table_reads_outcomes_and_the_layer_from_the_histories(tmp_path):
    stability = _benchmark("pif_stability")
    run = tmp_path / "runs" / "ce_pif_eq_lr0.2" / "seed1"
    run.mkdir(parents=True)
    (run / "history.csv").write_text("stage,epoch,lr,loss,grad_norm,neck_alpha,neck_beta,neck_gamma\n"
                                     "stage1,1,0.04,2.0,1.5,0.1,0.0,0.2\nstage1,2,0.08,1.4,15.6,2.5,-0.5,-0.7\n")
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"runs": [
        {"method": "ce", "seed": 0, "metrics": {"overall": 80.0}},
        {"method": "ce_pif_eq_lr0.2", "seed": 1, "metrics": {}, "failed": {"epoch": 3, "stage": "stage1"}}]}))
    lines = stability.table(tmp_path / "runs", results).splitlines()
    assert len(lines) == 3  # CE alone is not a PIF row
    assert lines[2].startswith("| lr 0.2, seed 1 | diverged (epoch 3) | 0.10 / 0.00 / 0.20 | 2.50 / -0.50 / -0.70 | — |")
    assert lines[2].endswith("| 15.60 (epoch 2) |")


def test_plan_times_cifar_without_its_files_once_a_network(tmp_path, capsys):
    """CIFAR not on disk: --plan times a step on random images of its shape and the profile's
    image count, once for methods that share network and stage kind, and counts its ops and
    FLOPs for the GPU estimate."""
    from longtail.cli import main

    common = {"data": {"dataset": "cifar10", "root": str(tmp_path / "absent"), "imbalance_factor": 100},
              "model": {"arch": "resnet8"}, "engine": {"threads": 1, "progress": False}}
    for m in ("ce", "focal"):
        (tmp_path / f"{m}.yaml").write_text(yaml.safe_dump({**common, "stages": [{"method": m, "epochs": 2, "batch_size": 64}]}))
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump({"suite": "c", "seeds": [0], "methods": {
        "ce": str(tmp_path / "ce.yaml"), "focal": str(tmp_path / "focal.yaml")}}))
    assert main(["bench", str(tmp_path / "suite.yaml"), "--runs", str(tmp_path / "runs"), "--plan"]) == 0
    out = capsys.readouterr().out
    rows = {ln.split(" | ")[0].lstrip("| "): ln.split(" | ") for ln in out.splitlines() if ln.startswith("| ce |") or ln.startswith("| focal |")}
    assert rows["ce"][3].endswith("s *") and rows["ce"][3] == rows["focal"][3]  # one timing for both
    assert " ops, " in rows["ce"][5] and "GFLOP a step" in rows["ce"][5]
    assert "random images of the data's shape" in out and "GPU-hours, estimated" in out


def test_slurm_launcher_names_a_missing_sbatch_before_any_work(tmp_path, monkeypatch, capsys):
    pytest.importorskip("submitit")
    import shutil

    from longtail.cli import main

    root = write_mnist_folder(tmp_path / "data", n_train_per_class=[40] * 10, n_test_per_class=6)
    suite = _write(tmp_path, root)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr("longtail.engine.trainer.Trainer.run", lambda self: pytest.fail("trained"))
    assert main(["bench", str(suite), "--runs", str(tmp_path / "runs"), "--launcher", "slurm"]) == 2
    err = capsys.readouterr().err
    assert "sbatch, squeue, scancel not found on PATH" in err and "--slurm cluster=local" in err
    assert not (tmp_path / "runs").exists()
