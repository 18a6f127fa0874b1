"""Each reader on small files written in the data set's real on-disk format."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_cifar, write_idx, write_mnist_folder
from longtail.config import DataConfig
from longtail.data import formats
from longtail.data.datasets import build_splits
from longtail.errors import LongtailError


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arr = np.random.default_rng(0).integers(0, 256, (7, 4, 3), dtype=np.uint8)
    p = write_idx(tmp_path / "x-idx3-ubyte", arr, gz)
    np.testing.assert_array_equal(formats.read_idx(p), arr)


def test_idx_truncated_and_bad_magic(tmp_path):
    arr = np.zeros((10, 4, 4), np.uint8)
    raw = write_idx(tmp_path / "a", arr, gz=False).read_bytes()
    (tmp_path / "b").write_bytes(raw[:-5])
    with pytest.raises(LongtailError, match="truncated"):
        formats.read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(LongtailError, match="not an idx"):
        formats.read_idx(tmp_path / "c")
    gz = write_idx(tmp_path / "d.gz", arr).read_bytes()
    (tmp_path / "e.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(LongtailError, match="gzip"):
        formats.read_idx(tmp_path / "e.gz")


def test_mnist_format_dataset_with_profile(tmp_path):
    root = write_mnist_folder(tmp_path / "m", n_train_per_class=[40] * 10, gz=False)
    cfg = DataConfig(dataset="mnist", root=str(root), imbalance_factor=10, max_per_class=40)
    s = build_splits(cfg)
    assert s.train.class_counts() == [40, 30, 23, 18, 14, 11, 8, 6, 5, 4]
    assert s.train.images.shape[1:] == (1, 8, 8) and s.train.images.dtype == torch.uint8
    assert len(s.test) == 50 and s.val is None
    # first n_c per class in file order
    raw_labels = formats.read_idx(root / "train-labels-idx1-ubyte")
    first3 = np.flatnonzero(raw_labels == 3)[:18]
    raw_imgs = formats.read_idx(root / "train-images-idx3-ubyte")
    got = s.train.images[s.train.labels == 3][:, 0].numpy()
    np.testing.assert_array_equal(got, raw_imgs[first3])


def test_validation_never_shrinks_the_profile(tmp_path):
    root = write_mnist_folder(tmp_path / "m", n_train_per_class=[40] * 10, gz=False)
    s = build_splits(DataConfig(dataset="mnist", root=str(root), imbalance_factor=10, val_per_class=5))
    # the profile is trained on exactly, the same images as without validation ...
    plain = build_splits(DataConfig(dataset="mnist", root=str(root), imbalance_factor=10))
    assert s.train.class_counts() == plain.train.class_counts() == [40, 30, 23, 18, 14, 11, 8, 6, 5, 4]
    assert torch.equal(s.train.images, plain.train.images)
    # ... and validation takes the last 5 of each class from the images beyond it: class 0 has none
    assert s.val.class_counts() == [0] + [5] * 9
    raw_labels = formats.read_idx(root / "train-labels-idx1-ubyte")
    raw_imgs = formats.read_idx(root / "train-images-idx3-ubyte")
    last5 = np.flatnonzero(raw_labels == 4)[-5:]
    np.testing.assert_array_equal(s.val.images[s.val.labels == 4][:, 0].numpy(), raw_imgs[last5])
    assert len(s.notes) == 1 and "class 0 has 0;" in s.notes[0] and "1 class(es)" in s.notes[0] and "max_per_class to at most 35" in s.notes[0]
    # below the largest class, every class has images to spare: a balanced validation set, no note
    s = build_splits(DataConfig(dataset="mnist", root=str(root), imbalance_factor=10, val_per_class=5, max_per_class=35))
    assert s.val.class_counts() == [5] * 10 and s.train.class_counts()[0] == 35 and not s.notes
    # nothing to spare anywhere (IF 1 over the whole set): a clear error, before any training
    with pytest.raises(LongtailError, match="none is left for validation"):
        build_splits(DataConfig(dataset="mnist", root=str(root), imbalance_factor=1, val_per_class=5))
    # profile none: no profile to preserve, the last v images are held out of training
    s = build_splits(DataConfig(dataset="mnist", root=str(root), profile="none", val_per_class=5))
    assert s.train.class_counts() == [35] * 10 and s.val.class_counts() == [5] * 10


def test_missing_root_and_label_mismatch(tmp_path):
    with pytest.raises(LongtailError, match="does not exist"):
        build_splits(DataConfig(dataset="fashion_mnist", root=str(tmp_path / "nope")))
    root = write_mnist_folder(tmp_path / "m")
    write_idx(root / "train-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    with pytest.raises(LongtailError, match="do not belong together"):
        build_splits(DataConfig(dataset="mnist", root=str(root)))


def test_label_out_of_range_in_idx(tmp_path):
    root = write_mnist_folder(tmp_path / "m")
    labels = formats.read_idx(root / "train-labels-idx1-ubyte.gz").copy()
    labels[3] = 12
    write_idx(root / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(LongtailError, match="label 12 out of range"):
        build_splits(DataConfig(dataset="mnist", root=str(root)))


@pytest.mark.parametrize("c", [10, 100])
def test_cifar_python_batches(tmp_path, c):
    root = write_cifar(tmp_path / f"cifar{c}", c, n_train=200, n_test=20)
    x, y = formats.read_cifar_split(root, c, train=True)
    assert x.shape == ((1000 if c == 10 else 200), 3, 32, 32) and x.dtype == np.uint8
    with open(root / ("data_batch_1" if c == 10 else "train"), "rb") as f:
        b = pickle.load(f, encoding="bytes")
    np.testing.assert_array_equal(x[0].reshape(-1), b[b"data"][0])  # CHW order kept
    s = build_splits(DataConfig(dataset=f"cifar{c}", root=str(root), profile="none"))
    assert len(s.test) == 20 and s.train.channels == 3
    assert s.train.class_counts() == np.bincount(y, minlength=c).tolist()


def test_cifar_crafted_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    root = tmp_path / "c"
    root.mkdir()
    (root / "test").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(LongtailError, match="refusing to load builtins.print"):
        formats.load_cifar_batch(root / "test")


def _write_jpegs(root, items):
    for rel, color in items:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 14), color).save(p)


def test_list_file_dataset_imagenet_lt_style(tmp_path):
    root = tmp_path / "imagenet"
    items = [(f"train/n{c:04d}/img_{i}.JPEG", (40 * c, 10, 200)) for c in range(3) for i in range(4 - c)]
    _write_jpegs(root, items)
    _write_jpegs(root, [(f"val/v_{c}.JPEG", (40 * c, 10, 200)) for c in range(3)])
    (tmp_path / "ImageNet_LT_train.txt").write_text("".join(f"{r} {int(r.split('/')[1][1:])}\n" for r, _ in items))
    (tmp_path / "ImageNet_LT_test.txt").write_text("".join(f"val/v_{c}.JPEG {c}\n" for c in range(3)))
    cfg = DataConfig(dataset="imagenet_lt", root=str(root), train_list=str(tmp_path / "ImageNet_LT_train.txt"),
                     test_list=str(tmp_path / "ImageNet_LT_test.txt"), profile="none", image_size=16)
    s = build_splits(cfg)
    assert s.train.class_counts() == [4, 3, 2] and not s.train.in_memory
    img = s.train.images[0]
    assert img.shape == (3, 16, 16) and img.dtype == torch.uint8
    assert abs(int(img[2].float().mean()) - 200) <= 2  # colour survives decode + resize
    cfg.in_memory = True
    assert build_splits(cfg).train.images.shape == (9, 3, 16, 16)


@pytest.mark.parametrize("line,match", [
    ("train/a.JPEG 7", "out of range"),
    ("train/a.JPEG", "expected 'relative/path label'"),
    ("train/a.JPEG 1\ntrain/a.JPEG 1", "listed twice"),
])
def test_list_file_errors(tmp_path, line, match):
    (tmp_path / "l.txt").write_text(line + "\n")
    with pytest.raises(LongtailError, match=match):
        formats.read_list_file(tmp_path / "l.txt", tmp_path, num_classes=3)


def test_list_file_missing_image(tmp_path):
    (tmp_path / "tr.txt").write_text("a.jpg 0\nb.jpg 1\n")
    (tmp_path / "te.txt").write_text("a.jpg 0\n")
    _write_jpegs(tmp_path, [("a.jpg", (0, 0, 0))])
    cfg = DataConfig(dataset="list", root=str(tmp_path), train_list=str(tmp_path / "tr.txt"), test_list=str(tmp_path / "te.txt"), profile="none")
    with pytest.raises(LongtailError, match="1 of 2 images .* missing"):
        build_splits(cfg)


def test_image_folder(tmp_path):
    for split in ("train", "test"):
        _write_jpegs(tmp_path / split, [(f"{name}/{i}.png", (i * 30, 0, 0)) for name, n in (("cat", 5), ("dog", 2)) for i in range(n)])
    s = build_splits(DataConfig(dataset="image_folder", root=str(tmp_path), profile="none", image_size=8, in_memory=True))
    assert s.train.class_names == ["cat", "dog"] and s.train.class_counts() == [5, 2]
    (tmp_path / "train" / "empty").mkdir()
    (tmp_path / "test" / "empty").mkdir()
    with pytest.raises(LongtailError, match="holds no images"):
        build_splits(DataConfig(dataset="image_folder", root=str(tmp_path), profile="none"))


def test_image_folder_as_it_is_first_try(tmp_path):
    """One sub-folder per class, no train/test, small PNGs: the data as it is (no profile), the
    images' own size and channels, a seeded stratified split with a test image in every class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, n in (("ant", 9), ("bee", 3), ("cricket", 1)):
        (tmp_path / name).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8), "L").save(tmp_path / name / f"{i}.png")
    cfg = DataConfig(dataset="image_folder", root=str(tmp_path), in_memory=True)
    s = build_splits(cfg)
    assert s.train.class_names == ["ant", "bee", "cricket"]
    assert s.test.class_counts() == [2, 1, 0] and s.train.class_counts() == [7, 2, 1] and s.val is None
    assert s.train.images.shape[1:] == (1, 12, 12)
    assert any("12 x 12 (their own size), 1 channel" in n for n in s.notes) and any("split by class" in n for n in s.notes)
    assert len(s.manifest) == 13 and {m[2] for m in s.manifest} == {"train", "test"}
    again = build_splits(cfg)
    assert again.manifest == s.manifest  # seeded
    other = build_splits(DataConfig(dataset="image_folder", root=str(tmp_path), split_seed=1, in_memory=True))
    assert other.manifest != s.manifest
    # mixed sizes: the median shorter side (12 px of 12 x 12 and 16 x 20 images), a multiple of 8
    Image.fromarray(np.zeros((20, 16), np.uint8), "L").save(tmp_path / "ant" / "big.png")
    notes = build_splits(DataConfig(dataset="image_folder", root=str(tmp_path))).notes
    assert any("16 x 16 (the median shorter side (12 px over 2 sizes, 12-16 px)" in n for n in notes), notes


def test_configs_debian_root_falls_back_to_the_fetch_cache(tmp_path, monkeypatch):
    """The shipped configs name Debian's folder; on a machine without it, `longtail fetch`'s
    cache folder serves (and `~` in data.root is expanded)."""
    from longtail.data import datasets, fetch

    cache = write_mnist_folder(tmp_path / "cache", n_train_per_class=[12] * 10)
    monkeypatch.setattr(datasets, "DEBIAN_ROOT", tmp_path / "no-debian")
    monkeypatch.setattr(fetch, "CACHE_ROOT", cache)
    s = build_splits(DataConfig(dataset="fashion_mnist", root=str(tmp_path / "no-debian"), imbalance_factor=1))
    assert len(s.train) == 120
    with pytest.raises(LongtailError, match="does not exist"):  # a root of the user's own is not replaced
        build_splits(DataConfig(dataset="fashion_mnist", root=str(tmp_path / "mine")))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert len(build_splits(DataConfig(dataset="mnist", root="~/cache", imbalance_factor=1)).train) == 120


def test_max_per_class_is_refused_where_no_profile_applies(tmp_path):
    """An image folder is used as it is (profile none): a cap on a profile would do nothing."""
    from longtail.config import DataConfig
    from longtail.data.datasets import build_splits
    from longtail.errors import LongtailError

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(tmp_path / c / f"{i}.png")
    with pytest.raises(LongtailError, match="max_per_class = 2 caps a long-tail profile"):
        build_splits(DataConfig(dataset="image_folder", root=str(tmp_path), max_per_class=2))
