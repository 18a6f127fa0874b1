"""Files written whole or not at all.

A run or a grid may be stopped (Ctrl-C, ``kill``, a full disk) while it writes its results; a
reader must then find the previous whole file, never half of the new one. So every result file
is written to a temporary file in the same folder (a rename is atomic only within one file
system) and renamed over the target. The temporary name is unique per writer, so two
processes writing one target never write one temporary file; the file gets the permissions a
plain ``open`` would give it (``mkstemp`` alone would leave it readable by its owner only).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path | str, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file ``.<name>.*.tmp`` beside it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        plain_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plain_permissions(path: Path | str) -> None:
    """Give a file made by ``mkstemp`` (owner-only, 0600) the permissions a plain ``open`` gives."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
