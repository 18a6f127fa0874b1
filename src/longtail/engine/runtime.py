"""Process-level set-up: device, threads, seeds, determinism, the run-folder lock."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from longtail.errors import LongtailError
from longtail.seeds import derive_seed, generator  # noqa: F401  (re-exported)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LongtailError(f"engine.device = {name} but no CUDA device is available", "set engine.device: cpu (or auto)")
    return dev


def setup_process(engine_cfg) -> torch.device:
    if engine_cfg.threads:
        torch.set_num_threads(engine_cfg.threads)
    if engine_cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    return pick_device(engine_cfg.device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 autocast on CUDA (losses stay fp32), fp32 elsewhere. On CPUs bf16 is only
    worth it with AMX (Intel Xeon): on the AMD EPYC measured here bf16 convolutions ran more than
    10x slower than fp32, and no AMX machine has measured it yet, so ``auto`` stays fp32 there."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" else "fp32"


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({platform.machine()})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


class RunLock:
    """``<run>/.lock`` holding the owner's pid: a second live run in the same folder is
    refused; a lock left by a dead process is taken over."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".lock"

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pid = self._owner()
                if pid is not None and pid != os.getpid() and _alive(pid):
                    raise LongtailError(f"run folder {self.path.parent} is in use by process {pid}",
                                        "wait for it to finish, or pass --out for another folder") from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or "x")
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
