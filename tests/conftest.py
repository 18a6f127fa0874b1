"""Shared helpers: writers of small files in the real on-disk formats, a tiny in-memory set."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

FMNIST = Path("/usr/share/datasets/fashion-mnist")

# engine.precision auto means bf16 on a CPU with native bf16: the suite's numbers (DDP against one
# process to 1e-4, say) must not depend on the CPU it runs on, so auto stays fp32 here (and in
# the processes the tests start, which inherit the environment)
os.environ["LONGTAIL_CPU_BF16"] = "0"


def write_idx(path: Path, arr: np.ndarray, gz: bool = True) -> Path:
    """Write ``arr`` (uint8) in LeCun's idx format: 0, 0, type 0x08, ndim, big-endian sizes."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_mnist_folder(root: Path, n_train_per_class=(30,) * 10, n_test_per_class=5, size=8, gz=True, seed=0):
    """A small MNIST-format folder whose images encode their label by brightness (learnable,
    and unchanged by crops and flips)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    test_counts = list(n_test_per_class) if isinstance(n_test_per_class, (list, tuple)) else [n_test_per_class] * len(n_train_per_class)
    for prefix, per_class in (("train", list(n_train_per_class)), ("t10k", test_counts)):
        labels = np.concatenate([[c] * n for c, n in enumerate(per_class)]).astype(np.uint8)
        rng.shuffle(labels)
        base = (20 + 220 * labels.astype(np.float64) / max(len(per_class) - 1, 1))[:, None, None]
        images = np.clip(base + rng.normal(0, 8, (len(labels), size, size)), 0, 255).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
    return root


def write_cifar(root: Path, num_classes=10, n_train=50, n_test=20, seed=0) -> Path:
    """CIFAR python batches: dicts with bytes keys, ``data`` uint8 N x 3072 (CHW)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    key = b"labels" if num_classes == 10 else b"fine_labels"

    def batch(n):
        return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                key: (np.arange(n) % num_classes).tolist(), b"batch_label": b"x"}

    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if num_classes == 10 else ["train", "test"]
    for name in names:
        n = n_test if "test" in name else n_train
        with open(root / name, "wb") as f:
            pickle.dump(batch(n), f, protocol=2)
    return root


@pytest.fixture
def mnist_folder(tmp_path):
    return write_mnist_folder(tmp_path / "mnist")


def fmnist_available() -> bool:
    return all((FMNIST / f).is_file() for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"))


needs_fmnist = pytest.mark.skipif(not fmnist_available(), reason="Fashion-MNIST not installed (run `make data`)")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def _prepared_root(tmp_path_factory):
    return tmp_path_factory.mktemp("longtail-cache")


@pytest.fixture(autouse=True)
def _cache(_prepared_root, monkeypatch):
    """Prepared image sets (data.cache) go to a folder of the test session, not ~/.cache."""
    monkeypatch.setenv("LONGTAIL_CACHE", str(_prepared_root))


def die_after_epochs(monkeypatch, n: int, exc: type[BaseException] = KeyboardInterrupt):
    """Make ``Trainer._train_epoch`` raise ``exc`` once ``n`` epochs have run (a killed run);
    returns a function that restores the real one. ``monkeypatch`` None patches for good (a
    spawned worker process, which ends with the run)."""
    from longtail.engine import trainer as trainer_mod

    real, calls = trainer_mod.Trainer._train_epoch, {"n": 0}
    patch = monkeypatch.setattr if monkeypatch is not None else setattr

    def dying(self, *a, **k):
        if calls["n"] == n:
            raise exc()
        calls["n"] += 1
        return real(self, *a, **k)

    patch(trainer_mod.Trainer, "_train_epoch", dying)
    return lambda: patch(trainer_mod.Trainer, "_train_epoch", real)
