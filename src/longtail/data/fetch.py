"""Make sure Fashion-MNIST is on disk: Debian's package, else the official download, else a
message saying where to put the files.

Downloads are verified by the SHA-256 of the *decompressed* idx bytes, which stays the same
whoever re-compresses the files (Debian ships them re-gzipped, so the archives' own hashes
differ from upstream's while the data is identical).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from longtail.errors import LongtailError
from longtail.files import write_atomic

DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
CACHE_ROOT = Path.home() / ".cache" / "longtail" / "fashion-mnist"  # where a download lands
DEBIAN_PACKAGE = "dataset-fashion-mnist"
OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# SHA-256 of the decompressed files (60,000 train / 10,000 test images, 28 x 28).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def has_files(root: Path, files=FASHION_MNIST_SHA256) -> bool:
    root = Path(root)
    return all((root / f).is_file() or (root / f.removesuffix(".gz")).is_file() for f in files)


def _content_sha256(raw: bytes) -> str:
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return hashlib.sha256(raw).hexdigest()


def _already_valid(path: Path, sha: str) -> bool:
    try:
        return path.is_file() and _content_sha256(path.read_bytes()) == sha
    except (OSError, EOFError, zlib.error):  # a damaged earlier download: fetch it again
        return False


def download(base_url: str, dest: Path, files: dict[str, str] = FASHION_MNIST_SHA256, timeout: float = 30.0) -> Path:
    """Fetch each ``base_url + name`` into ``dest``, verify its content hash, then move it in
    place atomically; a bad or partial file never lands under its final name."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, sha in files.items():
        if _already_valid(dest / name, sha):
            continue
        url = base_url.rstrip("/") + "/" + name
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                raw = r.read()
        except (urllib.error.URLError, OSError) as e:
            raise LongtailError(f"download of {url} failed: {e}", _manual_fix(dest)) from None
        try:
            got = _content_sha256(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise LongtailError(f"{url} is not a valid gzip file ({e})", _manual_fix(dest)) from None
        if got != sha:
            raise LongtailError(f"{url} failed verification: SHA-256 {got[:16]}... != expected {sha[:16]}...", _manual_fix(dest))
        write_atomic(dest / name, raw)
    return dest


def _manual_fix(root: Path) -> str:
    return (
        f"install Debian's '{DEBIAN_PACKAGE}' (files go to {DEBIAN_ROOT}), or copy the four idx files "
        f"({', '.join(FASHION_MNIST_SHA256)}) into {root} and set data.root to it"
    )


def ensure_fashion_mnist(root: Path | None = None, base_url: str = OFFICIAL_URL, use_apt: bool = True) -> Path:
    """Return a folder holding Fashion-MNIST, getting it if needed (apt, then download)."""
    root = Path(root) if root else DEBIAN_ROOT
    if has_files(root):
        return root
    if has_files(DEBIAN_ROOT):
        return DEBIAN_ROOT
    if use_apt and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "install", "-y", "-qq", DEBIAN_PACKAGE], ["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", DEBIAN_PACKAGE]):
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if has_files(DEBIAN_ROOT):
                return DEBIAN_ROOT
    if root == DEBIAN_ROOT:
        root = CACHE_ROOT
    return download(base_url, root)
