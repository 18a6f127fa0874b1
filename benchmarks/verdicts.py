"""The verdict table: every claim of both papers and of the literature's baseline ordering,
decided from paired per-seed differences in one or more bench results folders.

For a claim "A beats B on metric m" the pairing unit is the seed (same data, seed and, where
they share one, stage-1 model): d_s = m(A) − m(B). The verdict is **holds** when every seed
agrees with the claim, **does not** when every seed contradicts it, **mixed** otherwise, with n
the number of seeds; "≈" claims hold when every |d_s| < 1 point, "by ≥ 5" ones when every
d_s ≥ 5. A claim whose rows are not in a results folder is "not run". Each claim lists the row
pairs that stand for it in order of preference (the converged suite's exact H2T stage first,
the quick tier's stand-ins after), and the first pair present is used.

The claims about feature geometry (PIF's tighter classes, BNS's Thm 4.1) read the mean
intra-class cosine distance of the test set's pooled features (×100, lower = tighter) from
the JSON files of ``benchmarks/feature_geometry.py`` given with ``--geometry`` (and
``--five-epoch-geometry``).

    python benchmarks/verdicts.py benchmarks/results/fashion_mnist_lt_converged [--if 100]
        [--geometry benchmarks/results/fashion_mnist_lt_converged/feature_geometry.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import sys

sys.path.insert(0, str(Path(__file__).resolve().parent))
from paired import paired  # noqa: E402

# (claim, metric, kind, [(A, B), ...]); kind: ">" A above B, "<" A below B, ">=0" not below,
# "~" within 1, ">=5"; metric "intra" is the geometry files' intra-class distance x 100
CLAIMS = [
    ("BNS + IP-DPP beats CE on tail accuracy", "tail", ">", [("bns_ipdpp", "ce")]),
    ("... without losing overall accuracy to CE", "overall", ">=0", [("bns_ipdpp", "ce")]),
    ("BNS + IP-DPP beats cRT on tail accuracy", "tail", ">", [("bns_ipdpp", "crt")]),
    ("... without losing overall accuracy to cRT", "overall", ">=0", [("bns_ipdpp", "crt")]),
    ("IP-DPP beats uniform under-sampling to the same k (after BNS)", "overall", ">", [("bns_ipdpp", "bns_random")]),
    ("IP-DPP beats uniform under-sampling to the same k (after CE)", "overall", ">", [("ipdpp", "random_us")]),
    ("BNS representation beats CE's: linear probe", "overall", ">", [("bns", "ce_probe"), ("bns_e5", "ce_probe_e5")]),
    ("BNS representation beats CE's: cRT read-out", "overall", ">", [("bns_crt", "crt"), ("bns_crt_e5", "crt_e5")]),
    ("BNS tightens classes (Thm 4.1): intra-class distance below CE's", "intra", "<", [("bns_repr", "ce")]),
    # the authors' 1,000 BNS epochs (one seed: the budget), against the same 200-epoch CE rows
    ("BNS (1,000 epochs) + IP-DPP beats CE on tail accuracy", "tail", ">", [("bns1000_ipdpp", "ce")]),
    ("BNS (1,000 epochs) + IP-DPP beats cRT on tail accuracy", "tail", ">", [("bns1000_ipdpp", "crt")]),
    ("... without losing overall accuracy to cRT", "overall", ">=0", [("bns1000_ipdpp", "crt")]),
    ("IP-DPP beats uniform under-sampling to the same k (after BNS, 1,000 epochs)", "overall", ">", [("bns1000_ipdpp", "bns1000_random")]),
    ("BNS representation (1,000 epochs) beats CE's: linear probe", "overall", ">", [("bns1000", "ce_probe")]),
    ("BNS representation (1,000 epochs) beats CE's: cRT read-out", "overall", ">", [("bns1000_crt", "crt")]),
    ("BNS (1,000 epochs) tightens classes: intra-class distance below CE's", "intra", "<", [("bns1000_repr", "ce")]),
    # the whole training set (14,887 images; IP-DPP's k = 464, the authors' subset size)
    ("BNS + IP-DPP beats CE on tail accuracy (whole set)", "tail", ">", [("ws_bns_ipdpp", "ws_ce")]),
    ("... without losing overall accuracy to CE (whole set)", "overall", ">=0", [("ws_bns_ipdpp", "ws_ce")]),
    ("BNS + IP-DPP beats cRT on tail accuracy (whole set)", "tail", ">", [("ws_bns_ipdpp", "ws_crt")]),
    ("... without losing overall accuracy to cRT (whole set)", "overall", ">=0", [("ws_bns_ipdpp", "ws_crt")]),
    ("IP-DPP beats uniform under-sampling to the same k (after BNS, whole set)", "overall", ">", [("ws_bns_ipdpp", "ws_bns_random")]),
    ("IP-DPP beats uniform under-sampling to the same k (after CE, whole set)", "overall", ">", [("ws_ipdpp", "ws_random_us")]),
    ("BNS representation beats CE's: linear probe (whole set)", "overall", ">", [("ws_bns", "ws_ce_probe")]),
    ("BNS representation beats CE's: cRT read-out (whole set)", "overall", ">", [("ws_bns_crt", "ws_crt")]),
    ("cRT beats CE (whole set)", "overall", ">", [("ws_crt", "ws_ce")]),
    ("PIF tightens classes (CE)", "intra", "<", [("ce_pif", "ce")]),
    ("PIF tightens classes (LDAM-DRW)", "intra", "<", [("ldam_drw_pif", "ldam_drw")]),
    ("PIF tightens classes (Balanced Softmax)", "intra", "<", [("balanced_softmax_pif", "balanced_softmax")]),
    ("H2TF raises tail accuracy (DR -> DR + H2T)", "tail", ">", [("dr_h2t", "dr"), ("ce_h2tf_ft10_mixup", "crt_ft10_mixup")]),
    ("... without hurting head accuracy (DR -> DR + H2T)", "head", ">=0", [("dr_h2t", "dr"), ("ce_h2tf_ft10_mixup", "crt_ft10_mixup")]),
    ("H2TF raises tail accuracy on CE's classifier stage", "tail", ">", [("ce_h2tf", "ce_cls"), ("ce_h2tf", "crt")]),
    ("... without hurting head accuracy", "head", ">=0", [("ce_h2tf", "ce_cls"), ("ce_h2tf", "crt")]),
    ("PI-H2T beats its PIF half (CE)", "overall", ">", [("ce_pih2t", "ce_pif_cls"), ("ce_pih2t", "ce_pif_crt")]),
    ("PI-H2T beats its H2TF half (CE)", "overall", ">", [("ce_pih2t", "ce_h2tf")]),
    ("PI-H2T adds to CE", "overall", ">", [("ce_pih2t", "ce")]),
    ("PI-H2T adds to CE's classifier stage", "overall", ">", [("ce_pih2t", "ce_cls"), ("ce_pih2t", "crt")]),
    ("PI-H2T adds to LDAM-DRW", "overall", ">", [("ldam_drw_pih2t", "ldam_drw")]),
    ("PI-H2T adds to LDAM-DRW's classifier stage", "overall", ">", [("ldam_drw_pih2t", "ldam_drw_cls")]),
    ("PI-H2T adds to Balanced Softmax", "overall", ">", [("balanced_softmax_pih2t", "balanced_softmax")]),
    ("PI-H2T adds to Balanced Softmax's classifier stage", "overall", ">", [("balanced_softmax_pih2t", "balanced_softmax_cls")]),
    ("LDAM-DRW beats CE by >= 5 tail points", "tail", ">=5", [("ldam_drw", "ce")]),
    ("Balanced Softmax >= LDAM-DRW", "overall", ">=0", [("balanced_softmax", "ldam_drw")]),
    ("logit adjustment >= LDAM-DRW", "overall", ">=0", [("logit_adjust", "ldam_drw")]),
    ("cRT beats CE", "overall", ">", [("crt", "ce")]),
    ("focal ≈ CE", "overall", "~", [("focal", "ce")]),
    ("class-balanced re-sampling below cRT", "overall", ">", [("crt", "cb_resample")]),
]

# rows only the converged suite has (1,000 BNS epochs; the whole training set at the papers'
# schedules): their claims have no 5-epoch counterpart in the table
CONVERGED_ONLY = ("bns1000", "ws_")


def decide(diffs: list[float], kind: str) -> str:
    ok = {">": lambda d: d > 0, "<": lambda d: d < 0, ">=0": lambda d: d >= 0, "~": lambda d: abs(d) < 1, ">=5": lambda d: d >= 5}[kind]
    n_ok = sum(ok(d) for d in diffs)
    return "holds" if n_ok == len(diffs) else "does not" if n_ok == 0 else "mixed"


def verdicts(rows: list[dict], imbalance: float) -> list[dict]:
    have = {r["method"] for r in rows if float(r["imbalance_factor"]) == imbalance}
    out = []
    for claim, metric, kind, pairs in CLAIMS:
        pair = next(((a, b) for a, b in pairs if a in have and b in have), None)
        if pair is None:
            out.append({"claim": claim, "metric": metric, "pair": None, "diffs": {}, "verdict": "not run"})
            continue
        d = paired(rows, pair[0], pair[1], metric).get(imbalance, {})
        out.append({"claim": claim, "metric": metric, "pair": pair, "diffs": d,
                    "verdict": decide(list(d.values()), kind) if d else "not run"})
    return out


def _cell(v: dict) -> tuple[str, str]:
    d = v["diffs"]
    if not d:
        return "not run", "—"
    seeds = ", ".join(f"{x:+.1f}" for x in d.values())
    where = f" [{v['source']}]" if v.get("source") else ""
    return f"{v['verdict']} ({len(d)})", f"{v['pair'][0]} − {v['pair'][1]}: {seeds} (mean {sum(d.values()) / len(d):+.2f}){where}"


def geometry_rows(path: Path) -> list[dict]:
    """A feature_geometry.py JSON as result rows with one metric, ``intra`` (x 100)."""
    return [{"method": r["method"], "seed": r["seed"], "imbalance_factor": r.get("imbalance_factor", 100.0),
             "metrics": {"intra": 100 * r["intra"]}} for r in json.loads(path.read_text())["rows"]]


def first_decided(sources: list[tuple[str, list[dict]]], imbalance: float) -> list[dict]:
    """Per claim, the verdict from the first source (name, rows) that has its rows (suites are
    not pooled: their method ids mean different runs)."""
    per = [(name, verdicts(rows, imbalance)) for name, rows in sources]
    out = []
    for i in range(len(CLAIMS)):
        hit = next(({**v[i], "source": name} for name, v in per if v[i]["diffs"]), None)
        out.append(hit or per[0][1][i])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="+", help="bench results folders (holding results.json); rows are pooled")
    ap.add_argument("--if", dest="imbalance", type=float, default=100.0)
    ap.add_argument("--five-epoch", type=Path, nargs="+", help="5-epoch results folders: a column of their verdicts beside "
                    "(per claim, the first folder holding its rows)")
    ap.add_argument("--geometry", type=Path, help="benchmarks/feature_geometry.py JSON of the converged runs")
    ap.add_argument("--five-epoch-geometry", type=Path, nargs="+", help="the same for the 5-epoch runs (each file a source, "
                    "after the results folders)")
    a = ap.parse_args(argv)
    rows = []
    for p in a.results:
        if (p / "results.json").is_file():
            rows += json.loads((p / "results.json").read_text())["runs"]
        else:
            print(f"(no {p / 'results.json'} yet: its rows count as not run)", file=sys.stderr)
    if a.geometry:
        rows += geometry_rows(a.geometry)
    conv = verdicts(rows, a.imbalance)
    if a.five_epoch:
        sources = [(p.name, json.loads((p / "results.json").read_text())["runs"]) for p in a.five_epoch]
        for g in a.five_epoch_geometry or []:
            # benchmarks/results/feature_geometry.json -> "feature_geometry", a suite's own ->
            # "<suite>/feature_geometry"
            name = g.stem if g.parent.name == "results" else f"{g.parent.name}/{g.stem}"
            sources.append((name, geometry_rows(g)))
        quick = first_decided(sources, a.imbalance)
        print("| claim | metric | 5-epoch verdict (n) | 5-epoch A − B per seed | converged verdict (n) | converged A − B per seed |")
        print("|---|---|---|---|---|---|")
        for q, v, (_, _, _, pairs) in zip(quick, conv, CLAIMS):
            five = ("—", "—") if all(a.startswith(CONVERGED_ONLY) for a, _ in pairs) else _cell(q)
            print(f"| {v['claim']} | {v['metric']} | " + " | ".join(five) + " | " + " | ".join(_cell(v)) + " |")
        return
    print("| claim | metric | verdict (n) | A − B per seed |\n|---|---|---|---|")
    for v in conv:
        print(f"| {v['claim']} | {v['metric']} | " + " | ".join(_cell(v)) + " |")


if __name__ == "__main__":
    main()
