"""Process-level set-up: device, threads, seeds, determinism, the run-folder lock."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from longtail.errors import LongtailError
from longtail.seeds import derive_seed, generator  # noqa: F401  (re-exported)


def pick_device(name: str) -> torch.device:
    """The device of ``engine.device``, always with an index on CUDA (``cuda:0``, not ``cuda``):
    tensors made on ``cuda`` report ``cuda:0``, and ``torch.device("cuda") != torch.device("cuda:0")``,
    so an unindexed model device would make every comparison with a tensor's device fail."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LongtailError(f"engine.device = {name} but no CUDA device is available", "set engine.device: cpu (or auto)")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same as CUDA means it: an unindexed ``cuda`` is the current
    device (no synchronisation: device objects only)."""
    if a == b:
        return True
    if a.type != b.type or a.type != "cuda":
        return False
    current = torch.cuda.current_device()
    return (current if a.index is None else a.index) == (current if b.index is None else b.index)


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


def _usable_cpus() -> set[int] | None:
    """The CPUs this process may run on (None where the OS does not say)."""
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


def busy_cores(seconds: float = 0.2, stat: Path = Path("/proc/stat")) -> float | None:
    """How many of the CPUs this process may use other processes keep busy now: the busy share
    of those CPUs in /proc/stat over ``seconds`` (this process's own CPU time in that window taken
    out: torch's idle threads may spin), times their number. None where /proc/stat is missing."""
    import resource
    import time

    usable = _usable_cpus()
    cpus = {f"cpu{i}" for i in usable} if usable else None

    def sample():
        busy = total = 0
        for line in stat.read_text().splitlines():
            name, *ticks = line.split()
            if name.startswith("cpu") and name != "cpu" and (cpus is None or name in cpus):
                t = [int(v) for v in ticks[:8]]  # user nice system idle iowait irq softirq steal
                busy, total = busy + sum(t) - t[3] - t[4], total + sum(t)
        own = resource.getrusage(resource.RUSAGE_SELF)
        return busy, total, own.ru_utime + own.ru_stime

    try:
        b0, t0, own0 = sample()
        time.sleep(seconds)
        b1, t1, own1 = sample()
    except (OSError, ValueError):
        return None
    if t1 <= t0:
        return None
    n = len(cpus) if cpus else os.cpu_count() or 1
    return max(0.0, (b1 - b0) / (t1 - t0) * n - (own1 - own0) / seconds)


def cpu_threads(engine_cfg) -> int:
    """The torch threads a run of ``engine_cfg`` computes on where it runs on the CPU, else 0."""
    if pick_device(engine_cfg.device).type != "cpu":
        return 0
    return engine_cfg.threads or torch.get_num_threads()


def crowded_threads(threads: int, busy: float | None = None) -> tuple[int, str] | None:
    """Where torch's ``threads`` outnumber the CPUs other processes leave free: (the threads
    that fit, a warning naming the numbers); None where they fit or nothing can be measured.
    Threads sharing a core wait for each other at every parallel operation: measured here, a
    ResNet-32 epoch on 2 threads beside one busy core took 15x as long as on 1 thread."""
    if threads <= 1:
        return None
    cores = len(_usable_cpus() or ()) or os.cpu_count() or 1
    busy = busy_cores() if busy is None else busy
    if busy is None:
        return None
    fit = max(1, cores - int(busy + 0.5))
    if threads <= fit:
        return None
    return fit, (f"other processes keep about {busy:.1f} of the {cores} CPU cores busy and this run asks for {threads} torch "
                 f"threads: threads that share a core wait for each other at every operation, often many times slower than "
                 f"fewer threads (engine.threads={fit} fits; a different thread count can change the last digits of the results)")


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bf16 dot products in hardware (x86 flags ``avx512_bf16``: AMD
    Zen 4 and later, Intel Cooper Lake and later; ``amx_bf16``: Intel Xeon with AMX). Without
    them PyTorch emulates bf16, and bf16 autocast runs many times slower than fp32."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 autocast (losses stay fp32) on CUDA and on CPUs with native bf16
    (:func:`cpu_has_native_bf16`), fp32 on other CPUs. Measured (benchmarks/suites/
    fashion_mnist_lt_cpu_bf16.yaml, docs/results/cpu_bf16.md): on an AMD EPYC with avx512_bf16 bf16
    trained 1.3x faster end to end with accuracy level with fp32; on an AMD EPYC without it bf16
    convolutions ran more than 10x slower. AMX has not been measured. ``LONGTAIL_CPU_BF16=0`` in
    the environment keeps ``auto`` at fp32 on every CPU (the test suite sets it, so that its
    numbers do not depend on the CPU it runs on)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16"
    return "bf16" if os.environ.get("LONGTAIL_CPU_BF16", "1") != "0" and cpu_has_native_bf16() else "fp32"


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
    """``<run>/.lock`` holding the owner's pid, host and Slurm job id: a second live run in the
    same folder is refused; a lock left by a dead process is taken over. On a shared file system
    a lock from another host is stale when its Slurm job is this very job (requeued elsewhere) or
    one the scheduler no longer holds; otherwise it is refused with the host named."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".lock"

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and not self._mine(owner) and self._live(*owner):
                    pid, host, _ = owner
                    where = "" if host in ("", _host()) else f" on {host}"
                    raise LongtailError(f"run folder {self.path.parent} is in use by process {pid}{where}",
                                        "wait for it to finish, or pass --out for another folder"
                                        + (f" (if it is gone, delete {self.path})" if where else "")) from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(" ".join(map(str, self._me())))
            return self

    @staticmethod
    def _me() -> tuple[int, str, str]:
        return os.getpid(), _host(), os.environ.get("SLURM_JOB_ID", "")

    @staticmethod
    def _mine(owner: tuple[int, str, str]) -> bool:
        return owner[0] == os.getpid() and owner[1] in ("", _host())

    @staticmethod
    def _live(pid: int, host: str, job: str) -> bool:
        if host in ("", _host()):
            return _alive(pid)
        if job:  # another host's lock: its Slurm job says whether it is alive
            from longtail.launchers import job_alive

            return job != os.environ.get("SLURM_JOB_ID") and job_alive("slurm", job)
        return True

    def _owner(self) -> tuple[int, str, str] | None:
        try:
            parts = self.path.read_text().split() + ["", ""]  # (a lock of an older version holds the pid alone)
            return int(parts[0]), parts[1], parts[2]
        except (OSError, ValueError, IndexError):
            return None

    def release(self) -> None:
        owner = self._owner()
        if owner is not None and self._mine(owner):
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _host() -> str:
    import socket

    return socket.gethostname()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
