"""A practitioner's first try, end to end: a folder of PNGs with one sub-folder per class (no
train/test) -> longtail train configs/image_folder.yaml -> predict -> CSV with class names ->
export -> the exported model's logits equal the run's."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from longtail.cli import main

ROOT = Path(__file__).parents[1]


def _folder(root: Path) -> Path:
    """Three classes told apart by brightness, 16 x 16 RGB PNGs, long-tailed (24 / 8 / 3)."""
    rng = np.random.default_rng(0)
    for c, (name, n) in enumerate((("dark", 24), ("grey", 8), ("light", 3))):
        (root / name).mkdir(parents=True)
        for i in range(n):
            img = np.clip(40 + 80 * c + rng.normal(0, 10, (16, 16, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


def test_folder_to_predictions_and_export(tmp_path, capsys):
    import longtail

    data = _folder(tmp_path / "photos")
    run = tmp_path / "run"
    over = ["--set", f"data.root={data}", "--set", "stages.stage1.epochs=3", "--set", "stages.stage2.epochs=1",
            "--set", "model.arch=resnet8", "--set", "engine.threads=2", "--set", "engine.progress=false"]
    assert main(["train", str(ROOT / "configs/image_folder.yaml"), "--out", str(run), *over]) == 0
    log = capsys.readouterr().out
    assert "16 x 16 (their own size), 3 channel(s)" in log and "split by class" in log
    assert "train: 27 images (dark 19, grey 6, light 2)" in log  # class names, not indices
    assert "estimated: about" in log and "an epoch of stage1 (resnet8, 16 x 16 px, batch 128, 27 images" in log
    # the test split is imbalanced (5 / 2 / 1): balanced accuracy leads, and says why
    assert "| stage | method | balanced | overall |" in log and "The test set is imbalanced" in log
    m = json.loads((run / "metrics.json").read_text())
    assert m["headline"] == {"metric": "balanced", "value": m["balanced"]} and m["test_counts"] == [5, 2, 1]
    assert main(["eval", str(run)]) == 0 and "\ntest: balanced " in capsys.readouterr().out
    assert main(["info", str(ROOT / "configs/image_folder.yaml"), "--set", f"data.root={data}"]) == 0
    info = capsys.readouterr().out
    assert "the data as it is" in info and "test images per class: dark 5, grey 2, light 1" in info
    assert "warning: 2 class(es) have fewer than 5 test images" in info and "runs lead with balanced accuracy" in info
    split = list(csv.DictReader(open(run / "split.csv")))
    assert len(split) == 35 and {r["class"] for r in split if r["split"] == "test"} == {"dark", "grey", "light"}
    # the run's HTML report names the classes
    assert main(["report", str(run)]) == 0 and "<td>light</td>" in (run / "report.html").read_text()
    # predict: a CSV with class names, top-k
    assert main(["predict", str(run), str(data / "light"), str(data / "dark" / "0.png"), "--out", str(tmp_path / "p.csv"), "--top-k", "2"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == 4 and set(rows[0]) == {"path", "class", "prob", "top1", "top1_prob", "top2", "top2_prob"}
    assert all(r["class"] in ("dark", "grey", "light") and 0 < float(r["prob"]) <= 1 for r in rows)
    # the Python API gives the same predictions
    model = longtail.load(run)
    assert model.class_names == ["dark", "grey", "light"]
    assert [p["class"] for p in model.predict([data / "light", data / "dark" / "0.png"])] == [r["class"] for r in rows]
    # export: TorchScript whose logits equal the run's evaluation logits within 1e-5
    assert main(["export", str(run), "--out", str(tmp_path / "exp")]) == 0
    ts = torch.jit.load(str(tmp_path / "exp" / "model.torchscript.pt"))
    assert json.loads((tmp_path / "exp" / "classes.json").read_text())["classes"] == ["dark", "grey", "light"]
    from longtail.config import load_config
    from longtail.engine.trainer import Trainer

    tr = Trainer(load_config(run / "config.yaml"), run, log=lambda m: None)
    net = tr._build_model()
    net.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    want, _ = tr.predict(net, tr.splits.test)
    got = ts(tr.splits.test.images.float() / 255.0)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    # the torch.export program gives the same logits, at any batch size
    assert main(["export", str(run), "--out", str(tmp_path / "pt2"), "--format", "pt2"]) == 0
    program = torch.export.load(str(tmp_path / "pt2" / "model.pt2")).module()
    x = tr.splits.test.images.float() / 255.0
    assert torch.allclose(program(x), want, atol=1e-5) and torch.allclose(program(x[:1]), want[:1], atol=1e-5)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["input"]["class_names"] == ["dark", "grey", "light"]
    capsys.readouterr()
    # ONNX: with longtail[onnx] every file to ship is named (the weights travel as model.onnx.data);
    # without it, one error naming the extra
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
        have_onnx = True
    except ImportError:
        have_onnx = False
    rc = main(["export", str(run), "--out", str(tmp_path / "onnx"), "--format", "onnx"])
    out = capsys.readouterr()
    if have_onnx:
        assert rc == 0 and "model.onnx" in out.out and "ship every file" in out.out
        assert "centre-crop 16 x 16, RGB (3 channels), float in [0, 1]" in out.out
    else:
        assert rc == 2 and "pip install 'longtail[onnx]'" in out.err
    classes = json.loads((tmp_path / "exp" / "classes.json").read_text())
    assert "centre-crop 16 x 16" in classes["preprocess"] and classes["resize_filter"].startswith("bilinear")
    assert m["per_class_by_name"] == dict(zip(["dark", "grey", "light"], m["per_class"]))
    # unreadable images among those to predict: all named at once, or skipped with a row saying why
    bad = tmp_path / "new"
    bad.mkdir()
    (bad / "ok.png").write_bytes((data / "dark" / "1.png").read_bytes())
    (bad / "empty.png").write_bytes(b"")
    (bad / "cut.png").write_bytes((data / "dark" / "2.png").read_bytes()[:40])
    assert main(["predict", str(run), str(bad), "--out", str(tmp_path / "q.csv")]) == 2
    err = capsys.readouterr().err
    assert "2 of 3 images cannot be read" in err and "empty.png" in err and "cut.png" in err and "--skip-unreadable" in err
    assert main(["predict", str(run), str(bad), "--out", str(tmp_path / "q.csv"), "--skip-unreadable"]) == 0
    rows = {Path(r["path"]).name: r for r in csv.DictReader(open(tmp_path / "q.csv"))}
    assert rows["ok.png"]["class"] in ("dark", "grey", "light") and rows["ok.png"]["error"] == ""
    assert rows["empty.png"]["class"] == "" and rows["empty.png"]["error"] and rows["cut.png"]["error"]
    assert "2 unreadable image(s) skipped" in capsys.readouterr().out


def test_api_train_returns_the_run(tmp_path):
    import longtail

    data = _folder(tmp_path / "photos")
    run = longtail.train(ROOT / "configs/image_folder.yaml", overrides=[
        f"data.root={data}", "stages.stage1.epochs=1", "stages.stage2.epochs=1", "model.arch=resnet8",
        "engine.progress=false", "eval.plots=false"], out=tmp_path / "run")
    assert run.folder == tmp_path / "run" and 0 <= run.metrics["overall"] <= 100
    assert run.config.data.dataset == "image_folder"


def test_predict_names_a_missing_image(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "x.png"]) == 2
    assert "has no config.yaml" in capsys.readouterr().err


def test_eval_on_another_folder(tmp_path, capsys):
    data = _folder(tmp_path / "photos")
    other = _folder(tmp_path / "more")
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "configs/image_folder.yaml"), "--out", str(run), "--set", f"data.root={data}",
                 "--set", "stages.stage1.epochs=1", "--set", "stages.stage2.epochs=1", "--set", "model.arch=resnet8",
                 "--set", "engine.progress=false", "--set", "eval.plots=false"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--set", f"data.root={other}", "--set", "data.test_fraction=0.5", "--json", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["class_counts"] == json.loads((run / "metrics.json").read_text())["class_counts"]
    assert main(["eval", str(run), "--set", "model.arch=resnet32"]) == 2
    assert "only data.*" in capsys.readouterr().err


def _messy_folder(root: Path) -> tuple[Path, list[str]]:
    """Photos as people have them: JPEG and PNG, 64 x 64 and 56 x 48, grey and RGBA, a `.JPG`,
    stray `.DS_Store` and `notes.txt`, one empty and one truncated JPEG; classes 30 / 12 / 5."""
    rng = np.random.default_rng(1)
    for c, (name, n) in enumerate((("boots", 30), ("coats", 12), ("hats", 5))):
        (root / name).mkdir(parents=True)
        for i in range(n):
            w, h = (64, 64) if i % 2 else (56, 48)
            img = Image.fromarray(np.clip(40 + 80 * c + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8))
            if i % 3 == 0:
                img.convert("L").save(root / name / f"{i}.png")
            elif i % 3 == 1:
                img.convert("RGBA").save(root / name / f"{i}.png")
            else:
                img.save(root / name / f"{i}.{'JPG' if i == 2 else 'jpg'}", quality=90)
    (root / "boots" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / "notes.txt").write_text("photos from the shop")
    (root / "coats" / "empty.jpg").write_bytes(b"")
    raw = (root / "boots" / "5.jpg").read_bytes()
    (root / "boots" / "cut.jpg").write_bytes(raw[: len(raw) // 2])  # a truncated download
    return root, [str(root / "coats" / "empty.jpg"), str(root / "boots" / "cut.jpg")]


def test_every_unreadable_image_is_named_at_once_and_can_be_skipped(tmp_path, capsys):
    """`info` lists both bad files in one error, before any image is decoded for training; with
    data.skip_unreadable the run trains on the rest at a size taken from the data (the median
    shorter side of 48-64 px photos: 48 px, not 224), and the run folder lists what it left out."""
    data, bad = _messy_folder(tmp_path / "photos")
    over = ["--set", f"data.root={data}"]
    assert main(["info", str(ROOT / "configs/image_folder.yaml"), *over]) == 2
    err = capsys.readouterr().err
    assert "2 of 49 images cannot be read" in err and all(b in err for b in bad) and "data.skip_unreadable: true" in err
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "configs/image_folder.yaml"), "--out", str(run), *over, "--set", "data.skip_unreadable=true",
                 "--set", "model.arch=resnet8", "--set", "stages.stage1.epochs=2", "--set", "stages.stage2.epochs=1",
                 "--set", "engine.progress=false"]) == 0
    log = capsys.readouterr().out
    assert "2 unreadable image(s) left out" in log and "48 x 48 (the median shorter side (48 px over 2 sizes" in log
    assert "3 channel(s)" in log  # grey and RGBA images together: read as RGB
    assert sorted(line.split("\t")[0] for line in (run / "skipped_images.txt").read_text().splitlines()) == sorted(bad)
    m = json.loads((run / "metrics.json").read_text())
    assert m["run"]["input"]["size"] == 48 and m["run"]["train_images"] == 47 - sum(1 for r in csv.reader(open(run / "split.csv")) if r[2] == "test")


def test_each_header_is_read_once_before_decoding(tmp_path, monkeypatch):
    """data.verify's pass keeps each image's size and mode, so choosing the input size and
    channels opens no file again: a file is opened twice in all (verify, then decode)."""
    import collections

    import PIL.Image

    from longtail.config import load_config
    from longtail.data.datasets import build_splits

    data, bad = _messy_folder(tmp_path / "photos")
    for p in bad:
        Path(p).unlink()
    opened = collections.Counter()
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda fp, *a, **k: opened.update([str(fp)]) or real_open(fp, *a, **k))
    cfg = load_config(ROOT / "configs/image_folder.yaml", [f"data.root={data}"])
    assert cfg.data.verify and not cfg.data.image_size
    build_splits(cfg.data)
    assert len(opened) == 47 and set(opened.values()) == {2}


def test_size_from_data():
    from longtail.data.datasets import size_from_data

    assert size_from_data([(32, 32)] * 3) == (32, "their own size")
    assert size_from_data([(40, 30)])[0] == 30
    assert size_from_data([(64, 64), (56, 48), (100, 61)])[0] == 64  # median shorter side 61 -> 64
    assert size_from_data([(800, 600), (1024, 768)])[0] == 224  # capped
    assert size_from_data([(5, 5), (3, 4)])[0] == 8


def test_a_folder_too_large_for_memory_is_refused_before_decoding(tmp_path, capsys, monkeypatch):
    """data.in_memory with images that would fill more than half the free memory: an error that
    names the size and the settings that stream them instead, before any image is decoded."""
    from longtail.config import load_config
    from longtail.data import datasets
    from longtail.data.images import FileImages

    data = _folder(tmp_path / "photos")  # 35 images, 3 x 16 x 16
    monkeypatch.setattr(datasets, "available_memory", lambda: 2 * 35 * 3 * 16 * 16 - 2)
    monkeypatch.setattr(FileImages, "decode", lambda *a: pytest.fail("decoded an image"))
    assert main(["train", str(ROOT / "configs/image_folder.yaml"), "--set", f"data.root={data}",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "35 images at 3 x 16 x 16" in err and "data.in_memory=false data.cache=true" in err
    monkeypatch.setattr(datasets, "available_memory", lambda: 2 * 35 * 3 * 16 * 16)  # exactly half: fits
    assert datasets._check_fits_in_memory(load_config(ROOT / "configs/image_folder.yaml").data, 35, 3, 16) is None


def test_api_errors_name_the_apis_arguments(tmp_path):
    import longtail
    from longtail.errors import LongtailError

    data = _folder(tmp_path / "photos")
    over = [f"data.root={data}", "model.arch=resnet8", "stages.stage1.epochs=1", "stages.stage2.epochs=1", "engine.progress=false"]
    longtail.train(ROOT / "configs/image_folder.yaml", overrides=over, out=tmp_path / "run")
    with pytest.raises(LongtailError) as e:  # the folder holds a run: the fix is resume=True or another out=
        longtail.train(ROOT / "configs/image_folder.yaml", overrides=over, out=tmp_path / "run")
    assert "resume=True" in e.value.fix and "out=" in e.value.fix and "--" not in str(e.value)
    with pytest.raises(LongtailError) as e:
        longtail.train(ROOT / "configs/image_folder.yaml", overrides=["data.nope=1"])
    assert "--set" not in str(e.value)


def test_a_folder_of_one_class_stops_before_any_work(tmp_path, capsys):
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photos" / "cat" / "0.png")
    for cmd in ("info", "train"):
        assert main([cmd, str(ROOT / "configs/image_folder.yaml"), "--set", f"data.root={tmp_path / 'photos'}"]) == 2
        err = capsys.readouterr().err
        assert "has one class folder (cat)" in err and "two or more classes" in err


def test_a_relative_folder_not_found_shows_the_working_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["info", str(ROOT / "configs/image_folder.yaml"), "--set", "data.root=photos"]) == 2
    assert f"image folder not found: photos (relative to {tmp_path})" in capsys.readouterr().err


def test_a_shipped_config_is_found_from_outside_the_checkout(tmp_path, monkeypatch):
    from longtail.config import load_config

    monkeypatch.chdir(tmp_path)
    assert load_config("configs/image_folder.yaml").name == "image_folder"


def test_a_validation_split_with_classes_under_five_images_is_warned_about(tmp_path, capsys):
    data = _folder(tmp_path / "photos")
    assert main(["info", str(ROOT / "configs/image_folder.yaml"), "--set", f"data.root={data}", "--set", "data.val_fraction=0.2"]) == 0
    assert "fewer than 5 validation images" in capsys.readouterr().out
