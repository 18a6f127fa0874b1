"""Readers for the real on-disk formats of the benchmark data sets.

Each reader checks what it reads (magic numbers, sizes, keys, label ranges) and fails with a
:class:`LongtailError` naming the file and the fix, never with a bare traceback or a
silently wrong array.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zlib
from pathlib import Path

import numpy as np

from longtail.errors import LongtailError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


# ----------------------------------------------------------------------------- idx (MNIST)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip (by magic, not by name)."""
    path = Path(path)
    if not path.is_file():
        raise LongtailError(f"file not found: {path}", "check data.root, or run `make data` for Fashion-MNIST")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
            raise LongtailError(f"{path} is a corrupt or truncated gzip file ({e})", "delete it and download it again") from None
    return raw


def parse_idx(raw: bytes, name: str = "<idx>") -> np.ndarray:
    """Parse the idx format (LeCun's MNIST files): magic ``0 0 dtype ndim``, ``ndim`` big-endian
    int32 sizes, then the data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise LongtailError(f"{name} is not an idx file (bad magic number)", "point data.root at the idx files (train-images-idx3-ubyte[.gz] ...)")
    dtype, ndim = raw[2], raw[3]
    if dtype not in _IDX_DTYPES or ndim == 0:
        raise LongtailError(f"{name}: unsupported idx type 0x{dtype:02x} with {ndim} dims", "the file is corrupt; download it again")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise LongtailError(f"{name} is truncated inside its header", "the file is corrupt; download it again")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", ndim, 4))
    dt = np.dtype(_IDX_DTYPES[dtype])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    if len(raw) != expected:
        raise LongtailError(
            f"{name} has {len(raw)} bytes but its header {shape} needs {expected}",
            "the file is truncated or corrupt; download it again",
        )
    return np.frombuffer(raw, dt, offset=header).reshape(shape)


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_bytes(path), str(path))


def find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise LongtailError(
        f"{stem}[.gz] not found in {root}",
        "put the four idx files there (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not), or run `make data`",
    )


def read_mnist_split(root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images ``N x 1 x H x W`` uint8 and labels ``N`` for an MNIST-format split."""
    root = Path(root)
    prefix = "train" if train else "t10k"
    images = read_idx(find_idx(root, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find_idx(root, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.dtype != np.uint8:
        raise LongtailError(f"{root}: {prefix} images must be 3-d uint8 and labels 1-d", "the files are swapped or corrupt")
    if len(images) != len(labels):
        raise LongtailError(f"{root}: {len(images)} {prefix} images but {len(labels)} labels", "the files do not belong together; download them again")
    return images[:, None].copy(), labels.astype(np.int64)


# ----------------------------------------------------------------------- CIFAR python pickle
class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches' dicts of numpy arrays, lists and strings, nothing else:
    a crafted pickle cannot run code through us."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_cifar_batch(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise LongtailError(f"CIFAR batch not found: {path}", "point data.root at the extracted cifar-10-batches-py or cifar-100-python folder")
    try:
        obj = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except Exception as e:  # any unpickling failure means a corrupt or foreign file
        raise LongtailError(f"{path} is not a readable CIFAR python batch ({type(e).__name__}: {e})", "download the 'python version' of CIFAR again") from None
    if not isinstance(obj, dict):
        raise LongtailError(f"{path} does not hold a CIFAR batch dict", "download the 'python version' of CIFAR again")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_split(root: Path, num_classes: int, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 (``data_batch_1..5``, ``test_batch``, key ``labels``) or CIFAR-100 (``train``,
    ``test``, key ``fine_labels``): ``data`` is uint8 ``N x 3072`` in CHW order."""
    root = Path(root)
    if num_classes == 10:
        files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        key = "labels"
    else:
        files = ["train" if train else "test"]
        key = "fine_labels"
    xs, ys = [], []
    for f in files:
        batch = load_cifar_batch(root / f)
        if "data" not in batch or key not in batch:
            raise LongtailError(f"{root / f} lacks the keys 'data' and '{key}' (has {sorted(batch)})", f"is data.root a CIFAR-{num_classes} folder?")
        data = np.asarray(batch["data"])
        labels = np.asarray(batch[key], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
            raise LongtailError(f"{root / f}: 'data' must be uint8 N x 3072 matching {len(labels)} labels, got {data.dtype} {data.shape}", "the batch is corrupt; download it again")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


# ------------------------------------------------------------ list files (ImageNet-LT & co.)
def read_list_file(list_path: Path, root: Path, num_classes: int | None = None) -> tuple[list[Path], np.ndarray]:
    """Parse ``relative/path label`` lines (ImageNet-LT, Places-LT, iNaturalist 2018 splits).

    Blank lines are skipped; a malformed line, a negative or out-of-range label, or a
    duplicated path is an error naming the line.
    """
    list_path, root = Path(list_path), Path(root)
    if not list_path.is_file():
        raise LongtailError(f"list file not found: {list_path}", "set data.train_list / data.test_list to the split files that come with the data set")
    paths, labels, seen = [], [], {}
    text = list_path.read_text(encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise LongtailError(f"{list_path}:{lineno}: expected 'relative/path label', got {line[:80]!r}", "fix or remove that line")
        rel, lab = parts[0], int(parts[1])
        if lab < 0 or (num_classes is not None and lab >= num_classes):
            raise LongtailError(f"{list_path}:{lineno}: label {lab} out of range [0, {num_classes})", "fix the label or set data.num_classes")
        if rel in seen:
            raise LongtailError(f"{list_path}:{lineno}: {rel} is listed twice (first on line {seen[rel]})", "remove the duplicate line")
        seen[rel] = lineno
        paths.append(root / rel)
        labels.append(lab)
    if not paths:
        raise LongtailError(f"list file {list_path} lists no images", "point the config at the right split file")
    return paths, np.asarray(labels, np.int64)


def check_files_exist(paths: list[Path], list_name: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise LongtailError(
            f"{len(missing)} of {len(paths)} images in {list_name} are missing, e.g. {missing[0]}",
            "check data.root (paths in the list are relative to it) or download the images",
        )


def _shown(path: Path) -> str:
    """A path as an error shows it: a relative one with the working directory it is relative to."""
    import os

    return str(path) if path.is_absolute() else f"{path} (relative to {os.getcwd()})"


def read_image_folder(root: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """``root/<class name>/<image>`` trees (torchvision ImageFolder layout); classes sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise LongtailError(f"image folder not found: {_shown(root)}", "set data.root to a folder with one sub-folder per class")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise LongtailError(f"{_shown(root)} has no class sub-folders", "lay the images out as root/<class>/<image>")
    if len(classes) == 1:  # a classifier of one class learns nothing (its loss is 0 from the start)
        raise LongtailError(f"{_shown(root)} has one class folder ({classes[0]}): a classifier needs two or more classes",
                            "put each class's images in a sub-folder of its own: root/<class>/<image>, one folder per class")
    paths, labels = [], []
    for c, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise LongtailError(f"class folder {root / name} holds no images", f"add images or remove the folder (image types: {sorted(IMAGE_SUFFIXES)})")
        paths += files
        labels += [c] * len(files)
    return paths, np.asarray(labels, np.int64), classes

