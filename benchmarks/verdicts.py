"""The verdict table: every claim of both papers and of the literature's baseline ordering,
decided from paired per-seed differences in one or more bench results folders.

For a claim "A beats B on metric m" the pairing unit is the seed (same data, seed and, where
they share one, stage-1 model): d_s = m(A) − m(B). The default rule, **paired** (2026-12-06,
stated in docs/results/verdict_rule.md before any row it decides first had run), reads the spread of those
differences, not of the rows: with sd_d their sample standard deviation over n seeds,

- **holds** / **does not**: every d_s has the claim's sign (or every one the opposite) and the
  mean clears max(0.5 point, t(n − 1) · sd_d / √n), the one-sided 95 % paired-t bound;
- **level**: |mean| < 0.5 and every |d_s| < 1.0;
- **mixed**: anything else; **one seed: no verdict** for a single seed.

(:func:`decide_paired` has the "not below", "≈" and "by ≥ 5" forms.) ``--rule floor`` is the
previous rule, which used the rows' own seed-to-seed spread, not the differences' (so it ignored
the pairing) and is kept beside it; ``--rule signs`` the first. The previous rule had a **noise
floor** (chosen on 2026-12-04, before any row of the suite fashion_mnist_lt_pih2t_authors had run):

    floor = max(f, sd_A, sd_B)

with sd_A, sd_B the seed-to-seed sample standard deviations of the two rows over the paired
seeds (how much a row moves when only the seed changes) and f a fixed minimum, 0.5 points for
accuracies (0 for the geometry metric). Then, for "A above B" (mirrored for "below"):

- **holds**: every d_s > 0 and the mean difference > floor;
- **does not**: every d_s < 0 and the mean difference < −floor (the reverse holds);
- **level**: every |d_s| ≤ floor (no difference the seeds can tell from noise);
- **mixed**: anything else (seeds disagree, or agree on a difference within the noise);
- **one seed: no verdict**: a single seed has no seed-to-seed spread; its difference is printed.

"Not below" claims (``>=0``) hold when no d_s < −floor and do not when every d_s < 0 with a mean
below −floor; "≈" claims hold when every |d_s| < max(1, floor); "by ≥ 5" ones when every d_s ≥ 5.
``--rule signs`` applies the earlier rule (holds / does not when every seed agrees / disagrees,
mixed otherwise, no floor), and ``--changes [--against floor|signs|paired]`` lists the claims
whose verdict word differs between ``--rule`` and the other. A claim whose rows are not in a results folder is "not run". Each claim
lists the row pairs that stand for it in order of preference (the converged suite's exact H2T
stage first, the quick tier's stand-ins after), and the first pair present is used.

The claims about feature geometry (PIF's tighter classes, BNS's Thm 4.1) read the mean
intra-class cosine distance of the test set's pooled features (×100, lower = tighter) from
the JSON files of ``benchmarks/feature_geometry.py`` given with ``--geometry`` (and
``--five-epoch-geometry``).

    python benchmarks/verdicts.py benchmarks/results/fashion_mnist_lt_converged [--if 100]
        [--geometry benchmarks/results/fashion_mnist_lt_converged/feature_geometry.json]
    python benchmarks/verdicts.py benchmarks/results/fashion_mnist_lt_pih2t_authors --claims authors
        [--geometry benchmarks/results/fashion_mnist_lt_pih2t_authors/feature_geometry.json]
    python benchmarks/verdicts.py benchmarks/results/fashion_mnist_lt_bns_released
        benchmarks/results/fashion_mnist_lt_converged --claims released
    python benchmarks/verdicts.py benchmarks/results/fashion_mnist_lt_bns_capacity --claims capacity
"""

from __future__ import annotations

import argparse
import json
import statistics
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
    ("PIF (class-mean, ours) tightens classes (CE)", "intra", "<", [("ce_pif", "ce")]),
    ("PIF (class-mean, ours) tightens classes (LDAM-DRW)", "intra", "<", [("ldam_drw_pif", "ldam_drw")]),
    ("PIF (class-mean, ours) tightens classes (Balanced Softmax)", "intra", "<", [("balanced_softmax_pif", "balanced_softmax")]),
    ("H2TF raises tail accuracy (DR -> DR + H2T)", "tail", ">", [("dr_h2t", "dr"), ("ce_h2tf_ft10_mixup", "crt_ft10_mixup")]),
    ("... without hurting head accuracy (DR -> DR + H2T)", "head", ">=0", [("dr_h2t", "dr"), ("ce_h2tf_ft10_mixup", "crt_ft10_mixup")]),
    ("H2TF raises tail accuracy on CE's classifier stage", "tail", ">", [("ce_h2tf", "ce_cls"), ("ce_h2tf", "crt")]),
    ("... without hurting head accuracy", "head", ">=0", [("ce_h2tf", "ce_cls"), ("ce_h2tf", "crt")]),
    ("PI-H2T (class-mean PIF) beats its PIF half (CE)", "overall", ">", [("ce_pih2t", "ce_pif_cls"), ("ce_pih2t", "ce_pif_crt")]),
    ("PI-H2T (class-mean PIF) beats its H2TF half (CE)", "overall", ">", [("ce_pih2t", "ce_h2tf")]),
    ("PI-H2T (class-mean PIF) adds to CE", "overall", ">", [("ce_pih2t", "ce")]),
    ("PI-H2T (class-mean PIF) adds to CE's classifier stage", "overall", ">", [("ce_pih2t", "ce_cls"), ("ce_pih2t", "crt")]),
    ("PI-H2T (class-mean PIF) adds to LDAM-DRW", "overall", ">", [("ldam_drw_pih2t", "ldam_drw")]),
    ("PI-H2T (class-mean PIF) adds to LDAM-DRW's classifier stage", "overall", ">", [("ldam_drw_pih2t", "ldam_drw_cls")]),
    ("PI-H2T (class-mean PIF) adds to Balanced Softmax", "overall", ">", [("balanced_softmax_pih2t", "balanced_softmax")]),
    ("PI-H2T (class-mean PIF) adds to Balanced Softmax's classifier stage", "overall", ">", [("balanced_softmax_pih2t", "balanced_softmax_cls")]),
    ("LDAM-DRW beats CE by >= 5 tail points", "tail", ">=5", [("ldam_drw", "ce")]),
    ("Balanced Softmax >= LDAM-DRW", "overall", ">=0", [("balanced_softmax", "ldam_drw")]),
    ("logit adjustment >= LDAM-DRW", "overall", ">=0", [("logit_adjust", "ldam_drw")]),
    ("cRT beats CE", "overall", ">", [("crt", "ce")]),
    ("focal ≈ CE", "overall", "~", [("focal", "ce")]),
    ("class-balanced re-sampling below cRT", "overall", ">", [("crt", "cb_resample")]),
]

# PI-H2T as its authors wrote it (benchmarks/suites/fashion_mnist_lt_pih2t_authors.yaml): its
# method ids repeat the converged suite's for other runs, so these claims read that suite alone
AUTHORS_CLAIMS = [
    ("H2T adds to DR", "overall", ">", [("dr_h2t", "dr")]),
    ("H2T adds to MiSLAS", "overall", ">", [("mislas_h2t", "mislas")]),
    ("H2T adds to GCL", "overall", ">", [("gcl_h2t", "gcl")]),
    ("H2T adds to RIDE", "overall", ">", [("ride_h2t", "ride")]),
    ("H2T adds to RIDE beyond its classifier stage", "overall", ">", [("ride_h2t", "ride_cls")]),
    ("H2T raises tail accuracy (DR)", "tail", ">", [("dr_h2t", "dr")]),
    ("the fusion beats its ratio-0 control: tail (DR)", "tail", ">", [("dr_h2t", "dr_h2t_r0")]),
    ("the fusion beats its ratio-0 control: tail (MiSLAS)", "tail", ">", [("mislas_h2t", "mislas_h2t_r0")]),
    ("the fusion beats its ratio-0 control: tail (GCL)", "tail", ">", [("gcl_h2t", "gcl_h2t_r0")]),
    ("the fusion beats its ratio-0 control: tail (RIDE)", "tail", ">", [("ride_h2t", "ride_h2t_r0")]),
    ("the fusion beats its ratio-0 control: overall (DR)", "overall", ">", [("dr_h2t", "dr_h2t_r0")]),
    ("the fusion beats its ratio-0 control: overall (MiSLAS)", "overall", ">", [("mislas_h2t", "mislas_h2t_r0")]),
    ("the fusion beats its ratio-0 control: overall (GCL)", "overall", ">", [("gcl_h2t", "gcl_h2t_r0")]),
    ("the fusion beats its ratio-0 control: overall (RIDE)", "overall", ">", [("ride_h2t", "ride_h2t_r0")]),
    ("the donor pass alone (ratio 0) raises tail accuracy (DR)", "tail", ">", [("dr_h2t_r0", "dr")]),
    ("PIF (authors') tightens classes (CE + mixup)", "intra", "<", [("ce_mixup_pif", "ce_mixup")]),
    ("PIF (authors') tightens classes (GCL)", "intra", "<", [("gcl_pif_stage1", "gcl_stage1")]),
    ("PIF (authors') tightens classes (RIDE)", "intra", "<", [("ride_pif", "ride")]),
    ("PIF (authors') tightens classes (CE)", "intra", "<", [("ce_pif_eq", "ce")]),
    # the same on the folded network's features (before the layer; feature_geometry.py --before-neck)
    ("PIF (authors') tightens classes, folded features (CE + mixup)", "intra_folded", "<", [("ce_mixup_pif", "ce_mixup")]),
    ("PIF (authors') tightens classes, folded features (GCL)", "intra_folded", "<", [("gcl_pif_stage1", "gcl_stage1")]),
    ("PIF (authors') tightens classes, folded features (RIDE)", "intra_folded", "<", [("ride_pif", "ride")]),
    ("PIF (authors') tightens classes, folded features (CE)", "intra_folded", "<", [("ce_pif_eq", "ce")]),
    ("PIF (authors') separates classes better, folded features: intra / inter (CE + mixup)", "ratio_folded", "<",
     [("ce_mixup_pif", "ce_mixup")]),
    ("PIF (authors') separates classes better, folded features: intra / inter (GCL)", "ratio_folded", "<",
     [("gcl_pif_stage1", "gcl_stage1")]),
    ("PIF (authors') separates classes better, folded features: intra / inter (RIDE)", "ratio_folded", "<", [("ride_pif", "ride")]),
    ("PIF (authors') separates classes better, folded features: intra / inter (CE)", "ratio_folded", "<", [("ce_pif_eq", "ce")]),
    ("PI-H2T beats H2T (DR)", "overall", ">", [("dr_pih2t", "dr_h2t")]),
    ("PI-H2T beats H2T (MiSLAS)", "overall", ">", [("mislas_pih2t", "mislas_h2t")]),
    ("PI-H2T beats H2T (GCL)", "overall", ">", [("gcl_pih2t", "gcl_h2t")]),
    ("PI-H2T beats H2T (RIDE)", "overall", ">", [("ride_pih2t", "ride_h2t")]),
    ("PI-H2T adds to DR", "overall", ">", [("dr_pih2t", "dr")]),
    ("PI-H2T adds to MiSLAS", "overall", ">", [("mislas_pih2t", "mislas")]),
    ("PI-H2T adds to GCL", "overall", ">", [("gcl_pih2t", "gcl")]),
    ("PI-H2T adds to RIDE", "overall", ">", [("ride_pih2t", "ride")]),
    ("PIF (authors') alone adds to DR", "overall", ">", [("dr_pif", "dr")]),
    # both arms have the authors' PIF in stage 1 and differ only in the fusion ratio (0.3 or 0)
    ("after the authors' PIF, the fusion beats its ratio-0 control: tail (DR)", "tail", ">", [("dr_pih2t", "dr_pih2t_r0")]),
    ("after the authors' PIF, the fusion beats its ratio-0 control: overall (DR)", "overall", ">", [("dr_pih2t", "dr_pih2t_r0")]),
    ("PI-H2T (authors' PIF) adds to CE's classifier stage", "overall", ">", [("ce_pih2t_eq", "ce_cls")]),
    ("PIF (authors') half adds to CE's classifier stage", "overall", ">", [("ce_pif_eq_cls", "ce_cls")]),
]
# The controls of PI-H2T as reconstructed from its authors' code
# (benchmarks/suites/fashion_mnist_lt_pih2t_controls.yaml; its ids read that suite alone)
CONTROLS_CLAIMS = [
    # PIF against a learned scalar scale and offset (affine), and against a fixed scale
    ("the authors' PIF is level with its affine control: CE stage 1", "overall", "~", [("ce_pif_eq", "ce_affine")]),
    ("the authors' PIF is level with its affine control: CE + mixup stage 1", "overall", "~", [("ce_mixup_pif", "ce_mixup_affine")]),
    ("the authors' PIF is level with its affine control: RIDE stage 1", "overall", "~", [("ride_pif", "ride_affine")]),
    ("the authors' PIF is level with its affine control: DR + PI-H2T", "overall", "~", [("dr_pih2t", "dr_pih2t_affine")]),
    ("the authors' PIF is level with its affine control: MiSLAS + PI-H2T", "overall", "~", [("mislas_pih2t", "mislas_pih2t_affine")]),
    ("the authors' PIF beats a fixed feature scale: CE stage 1", "overall", ">", [("ce_pif_eq", "ce_scale")]),
    ("the authors' PIF beats a fixed feature scale: CE + mixup stage 1", "overall", ">", [("ce_mixup_pif", "ce_mixup_scale")]),
    ("the authors' PIF beats a fixed feature scale: RIDE stage 1", "overall", ">", [("ride_pif", "ride_scale")]),
    ("the authors' PIF beats a fixed feature scale: DR + PI-H2T", "overall", ">", [("dr_pih2t", "dr_pih2t_scale")]),
    ("the authors' PIF beats a fixed feature scale: MiSLAS + PI-H2T", "overall", ">", [("mislas_pih2t", "mislas_pih2t_scale")]),
    ("the authors' PIF adds to CE's stage 1", "overall", ">", [("ce_pif_eq", "ce")]),
    ("the affine control adds to CE's stage 1", "overall", ">", [("ce_affine", "ce")]),
    ("the authors' PIF adds to RIDE's stage 1", "overall", ">", [("ride_pif", "ride")]),
    # the donor pass: the ratio-0 control with BatchNorm updating against the same in evaluation mode
    ("the donor pass's tail gain needs BatchNorm's statistics to update (DR)", "tail", ">", [("dr_h2t_r0", "dr_h2t_r0_bneval")]),
    ("with BatchNorm in evaluation mode the donor pass changes nothing (DR)", "tail", "~", [("dr_h2t_r0_bneval", "dr")]),
    ("the donor pass's tail gain needs BatchNorm's statistics to update (RIDE)", "tail", ">", [("ride_h2t_r0", "ride_h2t_r0_bneval")]),
    ("with BatchNorm in evaluation mode the donor pass changes nothing (RIDE)", "tail", "~", [("ride_h2t_r0_bneval", "ride_cls")]),
    # ours: BatchNorm refreshed on instance-sampled batches, no fusion (+bnrefresh)
    ("refreshing BatchNorm on instance batches raises tail accuracy (DR)", "tail", ">", [("dr_bnrefresh", "dr")]),
    ("refreshing BatchNorm is level with the ratio-0 control on tail (DR)", "tail", "~", [("dr_bnrefresh", "dr_h2t_r0")]),
    ("refreshing BatchNorm adds to DR", "overall", ">", [("dr_bnrefresh", "dr")]),
    ("refreshing BatchNorm raises tail accuracy (MiSLAS)", "tail", ">", [("mislas_bnrefresh", "mislas")]),
    ("refreshing BatchNorm adds to MiSLAS", "overall", ">", [("mislas_bnrefresh", "mislas")]),
    ("refreshing BatchNorm raises tail accuracy (RIDE)", "tail", ">", [("ride_bnrefresh", "ride_cls")]),
    ("refreshing BatchNorm adds to RIDE", "overall", ">", [("ride_bnrefresh", "ride_cls")]),
    # H2T's second fusion (H2Tv2, our reading of d) after the authors' PIF, against its p = 1 control
    ("the convex fusion beats its p = 1 control: overall (DR)", "overall", ">", [("dr_pih2t_convex", "dr_pih2t_convex_p1")]),
    ("the convex fusion beats its p = 1 control: tail (DR)", "tail", ">", [("dr_pih2t_convex", "dr_pih2t_convex_p1")]),
    ("the convex fusion beats its p = 1 control: overall (MiSLAS)", "overall", ">", [("mislas_pih2t_convex", "mislas_pih2t_convex_p1")]),
    ("the convex fusion beats its p = 1 control: tail (MiSLAS)", "tail", ">", [("mislas_pih2t_convex", "mislas_pih2t_convex_p1")]),
    ("the convex fusion beats the channel swap (DR)", "overall", ">", [("dr_pih2t_convex", "dr_pih2t")]),
    ("the convex fusion beats the channel swap (MiSLAS)", "overall", ">", [("mislas_pih2t_convex", "mislas_pih2t")]),
    # corrections: MiSLAS with its class-aware sampler; CE's classifier stage at H2T's 10 epochs
    ("PI-H2T adds to DR", "overall", ">", [("dr_pih2t", "dr")]),
    ("PI-H2T adds to MiSLAS (its class-aware sampler)", "overall", ">", [("mislas_pih2t", "mislas")]),
    # the plug-and-play gain with the affine control in place of the authors' layer
    ("PI-H2T with the affine control for PIF adds to DR", "overall", ">", [("dr_pih2t_affine", "dr")]),
    ("PI-H2T with the affine control for PIF adds to MiSLAS", "overall", ">", [("mislas_pih2t_affine", "mislas")]),
    ("H2T's classifier stage (10 epochs, no fusion) beats CE", "overall", ">", [("ce_cls", "ce")]),
    ("PI-H2T (authors' PIF) adds to CE's classifier stage (10 epochs)", "overall", ">", [("ce_pih2t_eq", "ce_cls")]),
    ("PIF (authors') half adds to CE's classifier stage (10 epochs)", "overall", ">", [("ce_pif_eq_cls", "ce_cls")]),
    ("after the authors' PIF, the fusion beats its ratio-0 control: tail (CE, 10 epochs)", "tail", ">", [("ce_pih2t_eq", "ce_pih2t_eq_r0")]),
    ("after the authors' PIF, the fusion beats its ratio-0 control: overall (CE, 10 epochs)", "overall", ">", [("ce_pih2t_eq", "ce_pih2t_eq_r0")]),
]
# BNS as released (benchmarks/suites/fashion_mnist_lt_bns_released.yaml, rel_*) against the
# converged suite's whole-set rows (ws_*): give both results folders
RELEASED_CLAIMS = [
    ("BNS as released beats CE's representation through cRT (whole set)", "overall", ">", [("rel_bns_crt", "ws_crt")]),
    ("... on tail accuracy", "tail", ">", [("rel_bns_crt", "ws_crt")]),
    ("the released settings beat crop + flip BNS through cRT", "overall", ">", [("rel_bns_crt", "ws_bns_crt")]),
    ("BNS as released + IP-DPP beats CE on tail accuracy", "tail", ">", [("rel_bns_ipdpp", "ws_ce")]),
    ("... without losing overall accuracy to CE", "overall", ">=0", [("rel_bns_ipdpp", "ws_ce")]),
    ("BNS as released + IP-DPP beats cRT on tail accuracy", "tail", ">", [("rel_bns_ipdpp", "ws_crt")]),
    ("... without losing overall accuracy to cRT", "overall", ">=0", [("rel_bns_ipdpp", "ws_crt")]),
    ("with the same IP-DPP fine-tuning (crop + flip), BNS as released beats CE's stage 1", "overall", ">",
     [("rel_bns_ipdpp_cf", "ws_ipdpp")]),
    ("with the same IP-DPP fine-tuning (crop + flip), the released stage 1 beats crop + flip BNS", "overall", ">",
     [("rel_bns_ipdpp_cf", "ws_bns_ipdpp")]),
    ("after BNS as released, the authors' s = 1 fine-tuning views beat crop + flip", "overall", ">",
     [("rel_bns_ipdpp", "rel_bns_ipdpp_cf")]),
    ("IP-DPP beats uniform under-sampling to the same k (after BNS as released)", "overall", ">", [("rel_bns_ipdpp", "rel_bns_random")]),
]

# BNS against CE through cRT at three capacities (benchmarks/suites/fashion_mnist_lt_bns_capacity.yaml);
# gap_rN is a derived row: bns_crt_rN − crt_rN of the same seed
CAPACITY_CLAIMS = [
    ("BNS's representation beats CE's through cRT: ResNet-8", "overall", ">", [("bns_crt_r8", "crt_r8")]),
    ("BNS's representation beats CE's through cRT: ResNet-20", "overall", ">", [("bns_crt_r20", "crt_r20")]),
    ("BNS's representation beats CE's through cRT: ResNet-32", "overall", ">", [("bns_crt_r32", "crt_r32")]),
    ("BNS's gap to CE shrinks from ResNet-8 to ResNet-20", "overall", ">", [("gap_r20", "gap_r8")]),
    ("BNS's gap to CE shrinks from ResNet-8 to ResNet-32", "overall", ">", [("gap_r32", "gap_r8")]),
    ("BNS's tail gap to CE shrinks from ResNet-8 to ResNet-32", "tail", ">", [("gap_r32", "gap_r8")]),
]
# CE with and without the authors' PIF at three learning rates
# (benchmarks/suites/fashion_mnist_lt_pif_stability.yaml; a run that diverged has no metrics and
# drops out of its pair)
STABILITY_CLAIMS = [
    (f"the authors' PIF adds to CE's stage 1 (lr {lr})", "overall", ">", [(f"ce_pif_eq{tag}", f"ce{tag}")])
    for lr, tag in (("0.1", ""), ("0.05", "_lr0.05"), ("0.2", "_lr0.2"))
]
CLAIM_SETS = {"papers": CLAIMS, "authors": AUTHORS_CLAIMS, "controls": CONTROLS_CLAIMS, "released": RELEASED_CLAIMS,
              "capacity": CAPACITY_CLAIMS, "stability": STABILITY_CLAIMS}
# rows made from two others, seed by seed: name -> (A, B), metrics A − B
DERIVED = {"capacity": {f"gap_{n}": (f"bns_crt_{n}", f"crt_{n}") for n in ("r8", "r20", "r32")}}


def derived_rows(rows: list[dict], derived: dict) -> list[dict]:
    """Rows ``name`` whose metrics are A's minus B's (:func:`paired`) for each (imbalance factor,
    seed) both have."""
    out: dict[tuple, dict] = {}
    for name, (a, b) in derived.items():
        metrics = {k for r in rows if r["method"] == a for k, v in r["metrics"].items() if isinstance(v, (int, float))}
        for metric in sorted(metrics):
            for imb, diffs in paired(rows, a, b, metric).items():
                for seed, d in diffs.items():
                    row = out.setdefault((name, imb, seed), {"method": name, "seed": seed, "imbalance_factor": imb, "metrics": {}})
                    row["metrics"][metric] = d
    return list(out.values())

# rows only the converged suite has (1,000 BNS epochs; the whole training set at the papers'
# schedules): their claims have no 5-epoch counterpart in the table
CONVERGED_ONLY = ("bns1000", "ws_")


# the floor's fixed minimum, by metric (percentage points; the geometry metric has none)
FIXED_FLOOR = {"intra": 0.0, "intra_folded": 0.0, "ratio_folded": 0.0}
DEFAULT_FIXED_FLOOR = 0.5


def decide_signs(diffs: list[float], kind: str) -> str:
    """The earlier rule: every seed for the claim, every seed against it, or mixed; no floor."""
    ok = {">": lambda d: d > 0, "<": lambda d: d < 0, ">=0": lambda d: d >= 0, "~": lambda d: abs(d) < 1, ">=5": lambda d: d >= 5}[kind]
    n_ok = sum(ok(d) for d in diffs)
    return "holds" if n_ok == len(diffs) else "does not" if n_ok == 0 else "mixed"


def decide(diffs: list[float], kind: str, floor: float = 0.0) -> str:
    """The rule with a noise floor (the module's docstring)."""
    if len(diffs) == 1:
        return "one seed: no verdict"
    if kind == ">=5":
        return decide_signs(diffs, kind)
    if kind == "~":
        return "holds" if all(abs(d) < max(1.0, floor) for d in diffs) else \
            "does not" if all(abs(d) >= max(1.0, floor) for d in diffs) else "mixed"
    mean = sum(diffs) / len(diffs)
    if kind == ">=0":
        if all(d >= -floor for d in diffs):
            return "holds"
        return "does not" if all(d < 0 for d in diffs) and mean < -floor else "mixed"
    sign = 1.0 if kind == ">" else -1.0
    d = [sign * x for x in diffs]
    if all(x > 0 for x in d) and sign * mean > floor:
        return "holds"
    if all(x < 0 for x in d) and sign * mean < -floor:
        return "does not"
    if all(abs(x) <= floor for x in d):
        return "level"
    return "mixed"


# one-sided 95 % quantiles of Student's t by degrees of freedom (n seeds: n - 1); 1.645 beyond 30
T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812,
       11: 1.796, 12: 1.782, 13: 1.771, 14: 1.761, 15: 1.753, 16: 1.746, 17: 1.740, 18: 1.734, 19: 1.729, 20: 1.725,
       21: 1.721, 22: 1.717, 23: 1.714, 24: 1.711, 25: 1.708, 26: 1.706, 27: 1.703, 28: 1.701, 29: 1.699, 30: 1.697}
LEVEL_MEAN, LEVEL_SEED = 0.5, 1.0  # "level": |mean| below 0.5 point and every seed's |difference| below 1


def paired_bound(diffs: list[float]) -> float:
    """The one-sided 95 % paired-t bound t(n − 1) · sd_d / √n, sd_d the sample standard deviation of
    the per-seed differences: how far from 0 their mean must be to tell a difference from noise."""
    n = len(diffs)
    return T95.get(n - 1, 1.645) * statistics.stdev(diffs) / n ** 0.5


def decide_paired(diffs: list[float], kind: str, minimum: float = DEFAULT_FIXED_FLOOR) -> tuple[str, float | None]:
    """The paired rule (2026-12-06; docs/results/verdict_rule.md), with the margin
    the mean had to clear, max(``minimum``, :func:`paired_bound`):

    - **holds** / **does not**: every seed's difference has the claim's sign (or every one the
      opposite sign) and the mean clears the margin;
    - **level**: |mean| < 0.5 and every seed's |difference| < 1.0;
    - **mixed**: anything else; one seed: its difference and no verdict.

    "Not below" (``>=0``) holds when the mean's one-sided bound, mean − bound, is above −0.5 (not
    worse by half a point, at 95 %) and does not when every seed is below and the mean clears the
    margin below 0; "≈" (``~``) holds when |mean| + bound < 1; "by ≥ 5" applies the rule to d − 5."""
    if len(diffs) == 1:
        return "one seed: no verdict", None
    if kind == ">=5":
        return decide_paired([d - 5.0 for d in diffs], ">", minimum)
    mean, bound = sum(diffs) / len(diffs), paired_bound(diffs)
    margin = max(minimum, bound)
    if kind == "~":
        if abs(mean) + bound < LEVEL_SEED:
            return "holds", bound
        same = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
        return ("does not" if same and abs(mean) > max(LEVEL_SEED, bound) else "mixed"), bound
    if kind == ">=0":
        if all(d < 0 for d in diffs) and mean < -margin:
            return "does not", margin
        return ("holds" if mean - bound > -LEVEL_MEAN else "mixed"), bound
    sign = 1.0 if kind == ">" else -1.0
    d = [sign * x for x in diffs]
    m = sign * mean
    if all(x > 0 for x in d) and m > margin:
        return "holds", margin
    if all(x < 0 for x in d) and m < -margin:
        return "does not", margin
    if abs(mean) < LEVEL_MEAN and all(abs(x) < LEVEL_SEED for x in d):
        return "level", margin
    return "mixed", margin


def noise_floor(rows: list[dict], pair: tuple[str, str], metric: str, imbalance: float, seeds) -> float:
    """max(fixed minimum, the two rows' seed-to-seed sample standard deviations over ``seeds``)."""
    sds = []
    for m in pair:
        vals = [r["metrics"][metric] for r in rows if r["method"] == m and float(r["imbalance_factor"]) == imbalance
                and r["seed"] in seeds and metric in r["metrics"]]
        if len(vals) > 1:
            sds.append(statistics.stdev(vals))
    return max([FIXED_FLOOR.get(metric, DEFAULT_FIXED_FLOOR)] + sds)


def verdicts(rows: list[dict], imbalance: float, claims: list = None, rule: str = "paired") -> list[dict]:
    have = {r["method"] for r in rows if float(r["imbalance_factor"]) == imbalance}
    out = []
    for claim, metric, kind, pairs in CLAIMS if claims is None else claims:
        pair = next(((a, b) for a, b in pairs if a in have and b in have), None)
        if pair is None:
            out.append({"claim": claim, "metric": metric, "pair": None, "diffs": {}, "verdict": "not run"})
            continue
        d = paired(rows, pair[0], pair[1], metric).get(imbalance, {})
        floor = None
        if not d:
            verdict = "not run"
        elif rule == "paired":
            verdict, floor = decide_paired(list(d.values()), kind, FIXED_FLOOR.get(metric, DEFAULT_FIXED_FLOOR))
        elif rule == "floor":
            floor = noise_floor(rows, pair, metric, imbalance, set(d))
            verdict = decide(list(d.values()), kind, floor)
        else:
            verdict = decide_signs(list(d.values()), kind)
        out.append({"claim": claim, "metric": metric, "pair": pair, "diffs": d, "verdict": verdict, "floor": floor,
                    "rule": rule})
    return out


def _cell(v: dict) -> tuple[str, str]:
    d = v["diffs"]
    if not d:
        return "not run", "—"
    seeds = ", ".join(f"{x:+.1f}" for x in d.values())
    where = f" [{v['source']}]" if v.get("source") else ""
    said = "margin" if v.get("rule", "paired") == "paired" else "floor"
    floor = f"; {said} {v['floor']:.2f}" if v.get("floor") is not None and len(d) > 1 else ""
    word = v["verdict"] if v["verdict"].startswith("one seed") else f"{v['verdict']} ({len(d)})"
    return word, f"{v['pair'][0]} − {v['pair'][1]}: {seeds} (mean {sum(d.values()) / len(d):+.2f}{floor}){where}"


def geometry_rows(path: Path) -> list[dict]:
    """A feature_geometry.py JSON as result rows: ``intra`` (x 100); from a file measured before
    the neck (``--before-neck``: the folded network's features) ``intra_folded`` and
    ``ratio_folded`` (intra / inter, x 100) instead."""
    data = json.loads(path.read_text())
    folded = "before the neck" in data.get("features", "")
    return [{"method": r["method"], "seed": r["seed"], "imbalance_factor": r.get("imbalance_factor", 100.0),
             "metrics": ({"intra_folded": 100 * r["intra"], "ratio_folded": 100 * r["ratio"]} if folded
                         else {"intra": 100 * r["intra"]})} for r in data["rows"]]


def first_decided(sources: list[tuple[str, list[dict]]], imbalance: float, claims: list = None,
                  rule: str = "paired") -> list[dict]:
    """Per claim, the verdict from the first source (name, rows) that has its rows (suites are
    not pooled: their method ids mean different runs)."""
    claims = CLAIMS if claims is None else claims
    per = [(name, verdicts(rows, imbalance, claims, rule)) for name, rows in sources]
    out = []
    for i in range(len(claims)):
        hit = next(({**v[i], "source": name} for name, v in per if v[i]["diffs"]), None)
        out.append(hit or per[0][1][i])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="+", help="bench results folders (holding results.json); rows are pooled")
    ap.add_argument("--if", dest="imbalance", type=float, default=100.0)
    ap.add_argument("--five-epoch", type=Path, nargs="+", help="5-epoch results folders: a column of their verdicts beside "
                    "(per claim, the first folder holding its rows)")
    ap.add_argument("--geometry", type=Path, nargs="+", help="benchmarks/feature_geometry.py JSONs of the runs (one measured "
                    "--before-neck gives the folded-feature metrics)")
    ap.add_argument("--five-epoch-geometry", type=Path, nargs="+", help="the same for the 5-epoch runs (each file a source, "
                    "after the results folders)")
    ap.add_argument("--claims", choices=sorted(CLAIM_SETS), default="papers",
                    help="papers: the claims of both papers and the baselines (default); authors: PI-H2T as reconstructed from its authors' code; controls: its controls; "
                         "released: BNS as released (with the converged suite's folder); capacity: BNS and capacity; "
                         "stability: CE with and without the authors' PIF at three learning rates")
    ap.add_argument("--rule", choices=("paired", "floor", "signs"), default="paired",
                    help="paired: on the per-seed differences (default, 2026-12-06); floor: the rows' own spread (2026-12-04); "
                         "signs: the first rule")
    ap.add_argument("--changes", action="store_true", help="list the claims whose verdict word differs between --rule and --against")
    ap.add_argument("--against", choices=("paired", "floor", "signs"), default="floor", help="the rule --changes compares with")
    a = ap.parse_args(argv)
    claims = CLAIM_SETS[a.claims]
    rows = []
    for p in a.results:
        if (p / "results.json").is_file():
            rows += json.loads((p / "results.json").read_text())["runs"]
        else:
            print(f"(no {p / 'results.json'} yet: its rows count as not run)", file=sys.stderr)
    for g in a.geometry or []:
        rows += geometry_rows(g)
    rows += derived_rows(rows, DERIVED.get(a.claims, {}))
    conv = verdicts(rows, a.imbalance, claims, a.rule)
    sources = [(p.name, json.loads((p / "results.json").read_text())["runs"]) for p in a.five_epoch or []]
    for g in a.five_epoch_geometry or []:
        # benchmarks/results/feature_geometry.json -> "feature_geometry", a suite's own ->
        # "<suite>/feature_geometry"
        name = g.stem if g.parent.name == "results" else f"{g.parent.name}/{g.stem}"
        sources.append((name, geometry_rows(g)))
    if a.changes:
        other = a.against
        columns = [("converged", conv, verdicts(rows, a.imbalance, claims, other))]
        if sources:
            columns.append(("5-epoch", first_decided(sources, a.imbalance, claims, a.rule),
                            first_decided(sources, a.imbalance, claims, other)))
        print(f"| claim | column | {a.rule} rule | {other} rule |\n|---|---|---|---|")
        for column, now, then in columns:
            for x, y in zip(now, then):
                if x["verdict"] != y["verdict"]:
                    print(f"| {x['claim']} | {column} | {x['verdict']} | {y['verdict']} |")
        return
    if a.five_epoch:
        quick = first_decided(sources, a.imbalance, claims, a.rule)
        print("| claim | metric | 5-epoch verdict (n) | 5-epoch A − B per seed | converged verdict (n) | converged A − B per seed |")
        print("|---|---|---|---|---|---|")
        for q, v, (_, _, _, pairs) in zip(quick, conv, claims):
            five = ("—", "—") if all(a.startswith(CONVERGED_ONLY) for a, _ in pairs) else _cell(q)
            print(f"| {v['claim']} | {v['metric']} | " + " | ".join(five) + " | " + " | ".join(_cell(v)) + " |")
        return
    print("| claim | metric | verdict (n) | A − B per seed |\n|---|---|---|---|")
    for v in conv:
        print(f"| {v['claim']} | {v['metric']} | " + " | ".join(_cell(v)) + " |")


if __name__ == "__main__":
    main()
