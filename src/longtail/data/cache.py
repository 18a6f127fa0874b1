"""Decode once, read every epoch: a prepared copy of a file-backed image set.

Decoding a JPEG costs milliseconds of CPU; reading its pixels back costs microseconds. Large
sets (ImageNet-LT, iNaturalist, a user's folder) are therefore decoded once, exactly as
:class:`~longtail.data.images.FileImages` decodes them (shorter side to the stored size,
centre crop), and kept as raw ``uint8`` shards:

    <cache>/<key>/manifest.json       source files, shape, one SHA-256 per shard
    <cache>/<key>/shard-00000.u8      images i0 .. i0 + n - 1, n x C x S x S, C order

Training then reads whole batches from the shards with ``numpy.memmap`` (the page cache keeps
them in memory when they fit) and crops, flips and resizes them on the device
(:mod:`longtail.data.augment`).

``key`` hashes what the pixels depend on (each file's path, size and modification time; the
stored size; the channels; this format's version), so a changed file or setting prepares a new
copy rather than reading a stale one. Each shard is written under a temporary name and renamed
once complete, and the manifest comes last: a crash loses at most the shard in progress, and
the next run continues from the shards already written.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from longtail.errors import LongtailError
from longtail.files import write_atomic

VERSION = 1
SHARD_BYTES = 256 << 20  # 256 MiB a shard: few files, each small enough to rewrite after a crash


def cache_base() -> Path:
    """``$LONGTAIL_CACHE``, else ``~/.cache/longtail``: where longtail's caches live."""
    base = os.environ.get("LONGTAIL_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "longtail"


def cache_root(cache_dir: str = "") -> Path:
    """``data.cache_dir``, else ``$LONGTAIL_CACHE/prepared``, else ``~/.cache/longtail/prepared``."""
    return Path(cache_dir).expanduser() if cache_dir else cache_base() / "prepared"


def cache_key(paths, size: int, channels: int) -> str:
    """A hash of everything the decoded pixels depend on (module docstring)."""
    h = hashlib.sha256(json.dumps([VERSION, size, channels]).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


_FILES = None  # the FileImages a decoding worker reads (set once per worker)


def _init_worker(files):
    global _FILES
    _FILES = files
    torch.set_num_threads(1)


def _decode(i: int) -> bytes:
    return _FILES.decode(i).tobytes()


class CachedImages:
    """A prepared image set (module docstring): the interface of ``FileImages``, read from shards.

    ``index`` selects and orders images of the prepared set (a profile's subset is a view, not
    a copy)."""

    def __init__(self, folder: Path, index: np.ndarray | None = None):
        self.folder = Path(folder)
        m = json.loads((self.folder / "manifest.json").read_text())
        self.manifest = m
        self.n, self.channels, self.size = m["count"], m["channels"], m["size"]
        self.per_shard = m["per_shard"]
        self.index = np.arange(self.n) if index is None else np.asarray(index, dtype=np.int64)
        self._maps: dict[int, np.ndarray] = {}

    def _shard(self, s: int) -> np.ndarray:
        if s not in self._maps:
            n = min(self.per_shard, self.n - s * self.per_shard)
            self._maps[s] = np.memmap(self.folder / f"shard-{s:05d}.u8", dtype=np.uint8, mode="r",
                                      shape=(n, self.channels, self.size, self.size))
        return self._maps[s]

    def __getstate__(self):  # memmaps are reopened where the object is unpickled
        return {k: v for k, v in self.__dict__.items() if k != "_maps"} | {"_maps": {}}

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), self.channels, self.size, self.size)

    @property
    def paths(self) -> list[str]:
        return [self.manifest["files"][i] for i in self.index.tolist()]

    def read(self, idx) -> np.ndarray:
        """Images ``idx`` (positions in this set) as one ``len(idx) x C x S x S`` uint8 array."""
        j = self.index[np.asarray(idx, dtype=np.int64)]
        out = np.empty((len(j), self.channels, self.size, self.size), np.uint8)
        # one contiguous copy per image: ~15x faster than numpy's fancy indexing of the map
        for k, (s, r) in enumerate(zip(*(a.tolist() for a in np.divmod(j, self.per_shard)))):
            out[k] = self._shard(s)[r]
        return out

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.read([i])[0])

    def subset(self, idx) -> "CachedImages":
        view = CachedImages.__new__(CachedImages)
        view.__dict__.update(self.__getstate__())
        view.index = self.index[np.asarray(idx, dtype=np.int64)]
        return view

    def materialize(self) -> torch.Tensor:
        return torch.from_numpy(self.read(np.arange(len(self))))

    def check(self) -> None:
        """Re-hash every shard against the manifest (``longtail prepare`` on a prepared set)."""
        for s, want in enumerate(self.manifest["sha256"]):
            if _sha256(self.folder / f"shard-{s:05d}.u8") != want:
                raise LongtailError(f"prepared images in {self.folder} are damaged (shard {s} fails its checksum)",
                                    f"delete {self.folder} and run `longtail prepare` again")


def _complete(folder: Path, count: int, size: int, channels: int) -> bool:
    """A manifest that matches, and every shard present at its full length."""
    try:
        m = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if (m.get("version"), m.get("count"), m.get("size"), m.get("channels")) != (VERSION, count, size, channels):
        return False
    image = channels * size * size
    for s in range(len(m["sha256"])):
        n = min(m["per_shard"], count - s * m["per_shard"])
        f = folder / f"shard-{s:05d}.u8"
        if not f.is_file() or f.stat().st_size != n * image:
            return False
    return True


def prepare(files, cache_dir: str = "", workers: int = -1, log=print) -> CachedImages:
    """The prepared copy of ``files`` (a :class:`FileImages`), decoding whatever is missing.

    Decoding runs in ``workers`` processes (-1: the cores available) with a progress bar;
    results return through pipes, never shared memory, so a small ``/dev/shm`` is no limit."""
    folder = cache_root(cache_dir) / cache_key(files.paths, files.size, files.channels)
    count, size, channels = len(files), files.size, files.channels
    if _complete(folder, count, size, channels):
        return CachedImages(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = channels * size * size
    per_shard = max(1, SHARD_BYTES // image)
    shards = -(-count // per_shard)
    log(f"preparing {count} images at {size} x {size} x {channels} in {folder} (once; later runs read them)")
    t0 = time.perf_counter()
    workers = (os.cpu_count() or 1) if workers < 0 else workers
    from longtail.progress import progress

    bar = progress(count, "prepare images", "img", leave=True)
    sums = []
    pool = None
    try:
        if workers > 0 and count > 64:
            import multiprocessing

            pool = multiprocessing.get_context("fork").Pool(workers, _init_worker, (files,))
        for s in range(shards):
            lo, hi = s * per_shard, min(count, (s + 1) * per_shard)
            f = folder / f"shard-{s:05d}.u8"
            if f.is_file() and f.stat().st_size == (hi - lo) * image and (folder / f"shard-{s:05d}.sha256").is_file():
                sums.append((folder / f"shard-{s:05d}.sha256").read_text().strip())  # kept from an interrupted run
                bar.update(hi - lo)
                continue
            h = hashlib.sha256()
            tmp = folder / f".shard-{s:05d}.u8.{os.getpid()}.tmp"  # two processes never write one file
            with open(tmp, "wb") as out:
                decoded = pool.imap(_decode, range(lo, hi), chunksize=16) if pool else \
                    (files.decode(i).tobytes() for i in range(lo, hi))
                for b in decoded:
                    out.write(b)
                    h.update(b)
                    bar.update(1)
            tmp.replace(f)
            sums.append(h.hexdigest())
            (folder / f"shard-{s:05d}.sha256").write_text(sums[-1] + "\n")
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    manifest = {"version": VERSION, "count": count, "size": size, "channels": channels, "per_shard": per_shard,
                "sha256": sums, "files": [str(p) for p in files.paths]}
    write_atomic(folder / "manifest.json", json.dumps(manifest))
    dt = time.perf_counter() - t0
    log(f"prepared {count} images in {dt:.0f} s ({count / max(dt, 1e-9):.0f} img/s, {count * image / 2**20:.0f} MiB)")
    return CachedImages(folder)
