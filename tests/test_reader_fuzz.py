"""Property-based: damaged idx files, CIFAR batches and list files end in one LongtailError
naming the file — never a bare exception, a hang, or an array that disagrees with its header."""

import pickle

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import write_idx
from longtail.config import DataConfig
from longtail.data import formats
from longtail.data.datasets import build_splits
from longtail.errors import LongtailError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _damage(raw: bytes, data) -> bytes:
    mode = data.draw(st.sampled_from(["truncate", "flip", "both"]))
    b = bytearray(raw)
    if mode in ("flip", "both") and b:
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(b) - 1))
            b[i] ^= data.draw(st.integers(1, 255))
    if mode in ("truncate", "both"):
        b = b[: data.draw(st.integers(0, len(b)))]
    return bytes(b)


@SETTINGS
@given(data=st.data(), gz=st.booleans())
def test_damaged_idx(tmp_path, data, gz):
    arr = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    path = write_idx(tmp_path / "x-idx3-ubyte", arr, gz)
    path.write_bytes(_damage(path.read_bytes(), data))
    try:
        out = formats.read_idx(path)
    except LongtailError as e:
        assert str(path) in str(e)
        return
    # a flip inside the pixel bytes cannot be noticed; the shape always agrees with the bytes
    raw = formats.read_bytes(path)
    assert 4 + 4 * out.ndim + out.nbytes == len(raw)


@SETTINGS
@given(data=st.data())
def test_damaged_cifar_batch(tmp_path, data):
    batch = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}
    raw = _damage(pickle.dumps(batch, protocol=2), data)
    (tmp_path / "test_batch").write_bytes(raw)
    try:
        x, y = formats.read_cifar_split(tmp_path, 10, train=False)
    except LongtailError as e:
        assert "test_batch" in str(e)
        return
    assert x.shape == (len(y), 3, 32, 32) and x.dtype == np.uint8


lines = st.lists(st.tuples(st.sampled_from(["a.png", "b.png", "c.png", "missing.png", "sub/d.png"]),
                           st.one_of(st.integers(-2, 4), st.just("x"))), min_size=0, max_size=6)


@SETTINGS
@given(train=lines, test=lines)
def test_random_list_files(tmp_path, train, test):
    from PIL import Image

    (tmp_path / "sub").mkdir(exist_ok=True)
    for name in ("a.png", "b.png", "c.png", "sub/d.png"):
        Image.new("RGB", (6, 6), (10, 20, 30)).save(tmp_path / name)
    for fname, rows in (("tr.txt", train), ("te.txt", test)):
        (tmp_path / fname).write_text("".join(f"{p} {l}\n" for p, l in rows))
    cfg = DataConfig(dataset="list", root=str(tmp_path), train_list=str(tmp_path / "tr.txt"),
                     test_list=str(tmp_path / "te.txt"), profile="none", num_classes=3, image_size=4)
    try:
        s = build_splits(cfg)
    except LongtailError:
        return
    # accepted only when every listed image exists, labels are in range, no duplicates and
    # no class is empty
    assert all(isinstance(l, int) and 0 <= l < 3 for _, l in train + test)
    assert len({p for p, _ in train}) == len(train) and "missing.png" not in {p for p, _ in train + test}
    assert min(s.train.class_counts()) > 0
