"""Exact k-DPP sampling time: longtail.dpp against DPPy 0.3.3 on the same kernels, one run.

Rows (``benchmarks/results/dpp_scaling.json``, ``{"rows": [...]}``), one per kernel, size
and DPPy sampler:

* ``ipdpp`` — the IP-DPP kernel of one class (p ~ U(0.01, 1), scale 1/N², k = n/10).
  longtail: :func:`longtail.dpp.sample_kdpp_diag_rank1` (exact, no N × N matrix). DPPy: the
  dense kernel and ``sample_mcmc_k_dpp(size=k)`` as the authors call it (``dppy_method:
  mcmc``, 10 chain steps, *not* an exact draw), and ``sample_exact_k_dpp`` (``exact``).
* ``gram`` — ``L = B Bᵀ`` with B n × d Gaussian, k = d/2. longtail:
  :func:`longtail.dpp.sample_kdpp_dual`; DPPy: ``L_gram_factor`` (its dual exact sampler).
* ``imagenet_lt_draw`` — one whole IP-DPP subset draw over 115,846 items in 1,000 classes
  (class sizes 1,280 → 5 on an exponential profile rescaled to ImageNet-LT's total; the real
  per-class counts come with the split list), k = the median class size: longtail only.

Timing includes building what each sampler needs (the kernel or its factors). DPPy runs in a
child process with a time limit (``--limit``, 120 s); one that does not finish is recorded as
``dppy_s: null, dppy_note: "> 120 s"``. Install DPPy with ``pip install 'longtail[bench]'``.

Run: ``python benchmarks/dpp_scaling.py`` (``--quick``: n = 500 and 2,000 only).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path

import numpy as np

from longtail import dpp

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn, *args):
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def _best(fn, *args, repeats=3):
    return min(_timed(fn, *args) for _ in range(repeats))


# ------------------------------------------------------------------------------ longtail
def lt_ipdpp(p, k, seed=0):
    d, u = dpp.ipdpp_kernel(p, "n2")
    return dpp.sample_kdpp_diag_rank1(d, u, k, np.random.default_rng(seed))


def lt_gram(b, k, seed=0):
    return dpp.sample_kdpp_dual(b, k, np.random.default_rng(seed))


# ---------------------------------------------------------------------------------- DPPy
def _dppy_job(kind, payload, k, queue):
    import warnings

    from dppy.finite_dpps import FiniteDPP

    warnings.filterwarnings("ignore")
    t = time.perf_counter()
    rng = np.random.RandomState(0)
    if kind in ("mcmc", "exact"):
        d, u = dpp.ipdpp_kernel(payload, "n2")
        S = dpp.diag_rank1_dense(d, u)  # what the authors build (p pᵀ / N², rows summing to 1)
        D = FiniteDPP("likelihood", **{"L": S})
        if kind == "mcmc":
            D.sample_mcmc_k_dpp(size=k, random_state=rng)
        else:
            D.sample_exact_k_dpp(size=k, random_state=rng)
    else:  # dual
        D = FiniteDPP("likelihood", **{"L_gram_factor": payload.T})
        D.sample_exact_k_dpp(size=k, random_state=rng)
    queue.put(time.perf_counter() - t)


def dppy_time(kind, payload, k, limit):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_dppy_job, args=(kind, payload, k, q))
    proc.start()
    proc.join(limit)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return None, f"> {limit:g} s"
    if proc.exitcode != 0 or q.empty():
        return None, f"failed (exit code {proc.exitcode})"
    return q.get(), ""


def imagenet_lt_sizes(total=115_846, classes=1000, n_max=1280, n_min=5):
    c = np.arange(classes)
    sizes = n_max * (n_min / n_max) ** (c / (classes - 1))
    sizes = np.maximum(n_min, np.round(sizes * total / sizes.sum())).astype(int)
    sizes[0] += total - sizes.sum()
    return sizes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--limit", type=float, default=120.0, help="seconds before a DPPy run is stopped")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/dpp_scaling.json"))
    args = ap.parse_args()
    import dppy

    sizes = [500, 2000] if args.quick else [500, 1000, 2000, 5000, 10000, 20000]
    import os

    load_start = os.getloadavg()[0]  # other work on the machine slows both libraries alike
    rows = []

    def add(row):
        rows.append(row)
        print(json.dumps(row), flush=True)

    rng = np.random.default_rng(0)
    for n in sizes:
        p, k = rng.uniform(0.01, 1.0, n), n // 10
        lt = _best(lt_ipdpp, p, k)
        for kind in ("mcmc", "exact"):
            dt, note = dppy_time(kind, p, k, args.limit)
            add({"kernel": "ipdpp", "n": n, "d": None, "k": k, "longtail_s": round(lt, 5), "dppy_s": None if dt is None else round(dt, 5),
                 "dppy_method": kind, "dppy_note": note})
    for d in (64, 512):
        for n in sizes:
            b, k = rng.normal(size=(n, d)), d // 2
            lt = _best(lt_gram, b, k)
            dt, note = dppy_time("dual", b, k, args.limit)
            add({"kernel": "gram", "n": n, "d": d, "k": k, "longtail_s": round(lt, 5), "dppy_s": None if dt is None else round(dt, 5),
                 "dppy_method": "dual exact", "dppy_note": note})
    sizes_in = imagenet_lt_sizes()
    labels = np.repeat(np.arange(len(sizes_in)), sizes_in)
    k = int(np.median(sizes_in))
    p_all = rng.uniform(0.01, 1.0, len(labels))
    from longtail.methods.ipdpp import draw_subset

    lt = _best(lambda: draw_subset(labels, k, np.random.default_rng(0), "ipdpp", p_all, "n2"))
    add({"kernel": "imagenet_lt_draw", "n": int(len(labels)), "d": None, "k": k, "longtail_s": round(lt, 4), "dppy_s": None,
         "dppy_method": None, "dppy_note": "longtail only: 1,000 per-class draws"})
    import torch

    out = {"rows": rows, "machine": f"{platform.processor() or platform.machine()}, {mp.cpu_count()} cores",
           "numpy": np.__version__, "dppy": getattr(dppy, "__version__", "0.3.3"), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"),
           "load_average": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)}, "command": "python benchmarks/dpp_scaling.py " + " ".join(sys.argv[1:])}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
