"""Builds the emulated CUDA device's shim (shim.cpp) against the installed torch."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def build_shim(out_dir: Path) -> tuple[Path | None, str]:
    """(the library, "") or (None, why it cannot be built here): it needs g++ and torch's C++ headers."""
    headers = Path(torch.__file__).parent / "include"
    if shutil.which("g++") is None or not (headers / "c10" / "core" / "impl" / "FakeGuardImpl.h").is_file():
        return None, "the emulated CUDA device needs g++ and torch's C++ headers (FakeGuardImpl.h)"
    lib = Path(torch.__file__).parent / "lib"
    out = Path(out_dir) / "libemucuda.so"
    cmd = ["g++", "-std=c++20", "-O1", "-shared", "-fPIC", f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
           f"-I{headers}", str(HERE / "shim.cpp"), f"-L{lib}", "-ltorch_cpu", "-lc10", f"-Wl,-rpath,{lib}", "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"the emulated CUDA device's shim did not build against this torch: {r.stderr[-500:]}"
    return out, ""
