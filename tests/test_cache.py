"""Prepared image sets (data.cache, `longtail prepare`): the same pixels as decoding every epoch,
nothing lost on a crash, stale copies never read, batch reads in order, and the crops that
training and evaluation cut from larger stored images."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from longtail.cli import main
from longtail.data import cache
from longtail.data.augment import augment, center_crop, random_crop_flip, resized_crop, rrc_flip
from longtail.data.images import FileImages, LabeledImages
from longtail.data.loader import BatchSource
from longtail.errors import LongtailError

ROOT = Path(__file__).parents[1]


def _jpegs(root: Path, n: int = 40, classes: int = 2, seed: int = 0) -> list[Path]:
    """JPEGs of mixed sizes and aspect ratios, one sub-folder per class."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        c = i % classes
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        h, w = rng.integers(20, 48, 2)
        img = np.clip(60 * c + rng.normal(100, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        paths.append(root / f"c{c}" / f"{i:03d}.jpg")
        Image.fromarray(img).save(paths[-1], quality=90)
    return paths


def test_prepared_pixels_equal_pillows_across_shards(tmp_path, monkeypatch):
    files = FileImages(_jpegs(tmp_path / "img"), size=24)
    monkeypatch.setattr(cache, "SHARD_BYTES", 7 * 3 * 24 * 24)  # 7 images a shard: 6 shards
    prepared = cache.prepare(files, str(tmp_path / "c"), workers=2, log=lambda m: None)
    assert len(list(prepared.folder.glob("shard-*.u8"))) == 6
    want = torch.stack([files[i] for i in range(len(files))])
    assert torch.equal(prepared.materialize(), want)
    idx = np.array([39, 0, 7, 13, 14, 6, 6])  # across shards, repeated, out of order
    assert np.array_equal(prepared.read(idx), want[idx].numpy())
    sub = prepared.subset([5, 20, 33])
    assert torch.equal(sub[1], want[20]) and sub.paths == [str(files.paths[i]) for i in (5, 20, 33)]
    assert np.array_equal(sub.read([2, 0]), want[[33, 5]].numpy())
    prepared.check()


def test_a_crash_keeps_finished_shards_and_a_changed_file_is_prepared_anew(tmp_path, monkeypatch):
    paths = _jpegs(tmp_path / "img", n=30)
    files = FileImages(paths, size=16)
    monkeypatch.setattr(cache, "SHARD_BYTES", 10 * 3 * 16 * 16)
    want = torch.stack([files[i] for i in range(30)])
    real, calls = FileImages.decode, []

    def dying(self, i):
        if i == 25:
            raise KeyboardInterrupt
        calls.append(i)
        return real(self, i)

    monkeypatch.setattr(FileImages, "decode", dying)
    with pytest.raises(KeyboardInterrupt):
        cache.prepare(files, str(tmp_path / "c"), workers=0, log=lambda m: None)
    folder = cache.cache_root(str(tmp_path / "c")) / cache.cache_key(paths, 16, 3)
    assert sorted(f.name for f in folder.glob("shard-*.u8")) == ["shard-00000.u8", "shard-00001.u8"]
    assert not (folder / "manifest.json").exists()
    calls.clear()
    monkeypatch.setattr(FileImages, "decode", lambda self, i: (calls.append(i), real(self, i))[1])
    prepared = cache.prepare(files, str(tmp_path / "c"), workers=0, log=lambda m: None)
    assert calls == list(range(20, 30))  # only the unfinished shard is decoded again
    assert torch.equal(prepared.materialize(), want)
    # an edited image changes the key: a new copy, never the stale one
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(paths[3], quality=90)
    os.utime(paths[3], ns=(1, 1))
    again = cache.prepare(files, str(tmp_path / "c"), workers=0, log=lambda m: None)
    assert again.folder != prepared.folder and again[3].max() == 0
    # a damaged shard fails its checksum
    raw = bytearray((again.folder / "shard-00000.u8").read_bytes())
    raw[5] ^= 0xFF
    (again.folder / "shard-00000.u8").write_bytes(bytes(raw))
    with pytest.raises(LongtailError, match="checksum"):
        again.check()


@pytest.mark.parametrize("kind", ["cached", "files"])
def test_batch_sources_give_the_order_asked_for_epoch_after_epoch(tmp_path, kind):
    paths = _jpegs(tmp_path / "img", n=30)
    files = FileImages(paths, size=16)
    images = cache.prepare(files, str(tmp_path / "c"), workers=0, log=lambda m: None) if kind == "cached" else files
    data = LabeledImages(images, torch.arange(30) % 2, 2)
    src = BatchSource(data, torch.device("cpu"), workers=2)
    want = torch.stack([files[i] for i in range(30)])
    for epoch in range(2):
        order = torch.randperm(30, generator=torch.Generator().manual_seed(epoch))
        got = list(src.batches(order, 8, start=1))
        assert [len(i) for _, _, i in got] == [8, 8, 6]
        assert torch.equal(torch.cat([x for x, _, _ in got]), want[order[8:]])
        assert torch.equal(torch.cat([y for _, y, _ in got]), order[8:] % 2)
    if kind == "files":  # one DataLoader, its workers kept between epochs
        assert src._loader is not None and src._loader.persistent_workers


def test_crops_of_larger_stored_images():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    assert torch.equal(center_crop(x, 32), x[..., 4:36, 4:36]) and center_crop(x, 40) is x
    # crop_flip to a smaller size: every output is a window of the (unpadded) image
    y = random_crop_flip(x, 0, False, g, size=32)
    assert y.shape == (4, 3, 32, 32)
    for b in range(4):
        assert any(torch.equal(y[b], x[b, :, i:i + 32, j:j + 32]) for i in range(9) for j in range(9))
    # a box covering the whole image, resized to 20 px, is F.interpolate of the image
    xf = x.float() / 255
    box = torch.tensor([[0, 0, 40, 40]] * 4)
    assert torch.allclose(resized_crop(xf, box, 20), F.interpolate(xf, (20, 20), mode="bilinear", align_corners=False), atol=1e-5)
    # and of a sub-box, the interpolation of that crop
    box = torch.tensor([[3, 5, 30, 22]] * 4)
    ref = F.interpolate(xf[:, :, 3:33, 5:27], (16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(resized_crop(xf, box, 16), ref, atol=1e-5)
    assert rrc_flip(x, g, size=24).shape == (4, 3, 24, 24)

    class Aug:
        policy, crop_scale, flip, crop_padding, strength, blur = "rrc", [0.5, 1.0], True, 0, 1.0, True

    assert augment(x, Aug, g, 32).shape == (4, 3, 32, 32)
    Aug.policy = "simclr"
    assert augment(x, Aug, g, 32).shape == (4, 3, 32, 32)


def test_prepare_command_and_a_run_on_prepared_resized_images(tmp_path, capsys):
    data = tmp_path / "photos"
    _jpegs(data, n=36, classes=3)
    over = ["--set", f"data.root={data}", "--set", "data.in_memory=false", "--set", "data.image_size=24",
            "--set", "data.resize=28", "--set", f"data.cache_dir={tmp_path / 'c'}"]
    assert main(["prepare", str(ROOT / "configs/image_folder.yaml"), *over, "--check"]) == 0
    out = capsys.readouterr().out
    assert "prepared images at 28 x 28 x 3" in out and "checksums verified" in out and out.count(str(tmp_path / "c")) >= 2
    run = tmp_path / "run"
    assert main(["train", str(ROOT / "configs/image_folder.yaml"), *over, "--set", "stages.stage1.epochs=1",
                 "--set", "stages.stage2.epochs=1", "--set", "model.arch=resnet8", "--set", "engine.progress=false",
                 "--set", "augment.policy=rrc", "--out", str(run)]) == 0
    log = capsys.readouterr().out
    assert "28 x 28 (shorter side, centre crop), input 24 x 24" in log and "read from their prepared copy" in log
    assert "preparing" not in log  # prepared once, by `longtail prepare`
    import longtail

    model = longtail.load(run)
    assert (model.size, model.resize) == (24, 28)
    assert len(model.predict([data / "c0"])) == 12
    assert main(["prepare", str(ROOT / "configs/image_folder.yaml"), *over[:6], "--set", "data.resize=20"]) == 2
    assert "data.resize = 20 is below the input size 24" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("unshare"), reason="needs Linux unshare")
def test_decoding_workers_need_no_shared_memory(tmp_path):
    """Batches far larger than a 64 MB /dev/shm (a container's default) still load: workers pass
    numpy arrays through pipes."""
    _jpegs(tmp_path / "img", n=8)
    script = (
        "import sys, torch; sys.path.insert(0, %r)\n"
        "from pathlib import Path\n"
        "from longtail.data.images import FileImages, LabeledImages\n"
        "from longtail.data.loader import BatchSource\n"
        "paths = sorted(Path(%r).rglob('*.jpg')) * 64\n"
        "src = BatchSource(LabeledImages(FileImages(paths, 1024), torch.zeros(len(paths)), 1), torch.device('cpu'), 2)\n"
        "n = sum(len(x) for x, _, _ in src.batches(torch.arange(len(paths)), 32))\n"  # 100 MB a batch
        "print('loaded', n)\n" % (str(ROOT / "src"), str(tmp_path / "img")))
    cmd = ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64m tmpfs /dev/shm && {sys.executable} -c \"$0\"", script]
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64m tmpfs /dev/shm"], capture_output=True)
    if probe.returncode:
        pytest.skip("cannot mount a small /dev/shm here (needs root)")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "loaded 512" in r.stdout, r.stderr[-2000:]


def test_long_phases_print_progress_lines_outside_a_terminal(tmp_path, monkeypatch, capsys):
    from longtail import progress

    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)  # every update is "long" here
    files = FileImages(_jpegs(tmp_path / "img", n=10), size=16)
    cache.prepare(files, str(tmp_path / "c"), workers=0, log=lambda m: None)
    err = capsys.readouterr().err
    assert "prepare images: 1/10 (10%)" in err and "prepare images: 10/10 (100%)" in err and "img/s" in err
