"""Atomic, verified checkpoints that load with ``weights_only=True``.

File layout: ``LONGTAIL-CKPT 1\\n`` + the SHA-256 (hex) of the payload + ``\\n`` + the
``torch.save`` payload. Writing goes to a temporary file in the same folder, is flushed and
fsynced, then renamed over the target, so a crash or a full disk mid-write never leaves a
half-written checkpoint under the real name; the previous checkpoint is kept as
``<name>.prev`` for the case the newest is damaged anyway.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
from pathlib import Path

import torch

from longtail.errors import LongtailError
from longtail.files import plain_permissions

MAGIC = b"LONGTAIL-CKPT 1\n"


def save_checkpoint(state: dict, path: Path, keep_previous: bool = True) -> Path:
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + digest + b"\n")
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        plain_permissions(tmp)
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise LongtailError(f"could not write checkpoint {path}: {e}", "free disk space; the previous checkpoint is intact") from None
        raise
    return path


def previous_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".prev")


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Load and verify one checkpoint; any damage is a :class:`LongtailError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise LongtailError(f"checkpoint not found: {path}", "check the run folder")
    raw = path.read_bytes()
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 65:
        raise LongtailError(f"{path} is not a longtail checkpoint (bad header)", "it is truncated or foreign; resume from the previous checkpoint")
    digest, payload = raw[len(MAGIC): len(MAGIC) + 64], raw[len(MAGIC) + 65:]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise LongtailError(f"{path} is corrupt (checksum mismatch: truncated or damaged)", "resume from the previous checkpoint")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise LongtailError(f"{path} holds objects other than tensors and plain values; refusing to load it ({e})",
                            "only load checkpoints written by longtail; a pickle that runs code is never executed") from None


def load_latest(path: Path, map_location="cpu", log=print) -> dict:
    """The newest readable checkpoint: ``path``, else its ``.prev`` (with a message)."""
    try:
        return load_checkpoint(path, map_location)
    except LongtailError as first:
        prev = previous_path(path)
        if prev.is_file():
            log(f"warning: {first.problem}; falling back to {prev}")
            return load_checkpoint(prev, map_location)
        raise
