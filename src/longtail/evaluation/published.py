"""Published numbers beside a suite's rows (``benchmarks/published.yaml``): the first question a
reader of a reproduction asks is how far it lands from the paper.

An entry joins a method's rows when all four agree: the data set (results rows' ``dataset``, e.g.
``cifar100_lt``), the imbalance factor, the method id, and the backbone (the run's
``model.arch``). A different backbone never joins: a ResNet-18 row is not a reproduction of a
ResNet-32 number. The reproduction line compares the mean over seeds with the published top-1
(our ``overall`` accuracy on the balanced test set): "within 1 point" when |ours − published| ≤ 1,
else "above by x" / "below by x".
"""

from __future__ import annotations

from pathlib import Path

import yaml

from longtail.errors import LongtailError

DEFAULT = Path(__file__).resolve().parents[3] / "benchmarks" / "published.yaml"
KEYS = ("dataset", "imbalance_factor", "method", "backbone", "top1", "paper", "table")


def load(path: Path | str | None = None) -> list[dict]:
    """The entries of a published-numbers file (default :data:`DEFAULT`; none where the file is
    absent, as in an installed package); each must have :data:`KEYS`."""
    path = Path(path or DEFAULT)
    if not path.is_file():
        return []
    entries = yaml.safe_load(path.read_text()) or []
    for i, e in enumerate(entries):
        missing = [k for k in KEYS if k not in e]
        if missing:
            raise LongtailError(f"{path}: entry {i} lacks {missing}", f"give every entry {', '.join(KEYS)}")
    return entries


def backbone(row: dict) -> str:
    return ((row.get("config") or {}).get("model") or {}).get("arch", "")


def match(rows: list[dict], entries: list[dict]) -> dict | None:
    """The entry for a method's rows (same method, data set and IF), or None: no entry, or one
    for another backbone."""
    r0 = rows[0]
    for e in entries:
        if (e["method"] == r0["method"] and e["dataset"] == r0.get("dataset")
                and float(e["imbalance_factor"]) == float(r0["imbalance_factor"]) and e["backbone"] == backbone(r0)):
            return e
    return None


def reproduction(ours: float, published: float) -> str:
    """"within 1 point" / "above by 1.3" / "below by 2.3"."""
    d = ours - published
    return "within 1 point" if abs(d) <= 1.0 else f"{'above' if d > 0 else 'below'} by {abs(d):.1f}"
