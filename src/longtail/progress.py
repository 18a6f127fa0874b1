"""Progress of long phases (training epochs, evaluation, preparing and verifying images,
prediction), in a terminal and in a log file alike.

In a terminal: a tqdm bar. Anywhere else (a cluster job's log, a pipe) a bar writes nothing a
reader can use, so the same phase prints a line every ``LINE_EVERY_S`` seconds instead, e.g.
``prepare images: 12,800/115,846 (11%), 1,530 img/s, ETA 74 s``, and a last one at the end
when it took that long. Phases shorter than that print nothing.
"""

from __future__ import annotations

import sys
import time

LINE_EVERY_S = 30.0


class _Lines:
    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit = total, desc, unit
        self.n, self.postfix = 0, ""
        self.t0 = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= LINE_EVERY_S:
            self.last = now
            self._line(now)

    def set_postfix(self, **kw) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in kw.items())

    def _line(self, now: float) -> None:
        rate = self.n / max(now - self.t0, 1e-9)
        eta = f", ETA {max(self.total - self.n, 0) / rate:.0f} s" if rate > 0 and self.n < self.total else ""
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n:,}/{self.total:,}{share}, {rate:,.1f} {self.unit}/s{eta}{extra}", file=sys.stderr, flush=True)

    def close(self) -> None:
        now = time.monotonic()
        if now - self.t0 >= LINE_EVERY_S:
            self._line(now)

    def __iter__(self):  # not used: callers update() by hand
        raise TypeError("use update()")


def progress(total: int, desc: str, unit: str = "it", leave: bool = False):
    """A bar in a terminal, periodic lines elsewhere (module docstring); ``update``,
    ``set_postfix`` and ``close`` either way."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)
    return _Lines(total, desc, unit)
