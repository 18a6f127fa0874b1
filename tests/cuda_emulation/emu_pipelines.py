"""The pipelines tests/cuda_emulation/drive.py runs on the emulated CUDA device (importable
without starting the emulation)."""

CE = "{method: ce, epochs: 1, batch_size: 16}"
HEAD = "train: head, sampler: class_balanced"


def _stages(*stages: str) -> str:
    return "stages=[" + ", ".join(stages) + "]"


# name -> (data, extra overrides); "mnist" is the in-memory idx format, "cifar" RGB (colour
# jitter), "folder_prepared" / "folder_decoded" an image folder read from its prepared shards or
# decoded every epoch
PIPELINES = {
    "ce": ("mnist", [_stages("{method: ce, epochs: 2, batch_size: 16}")]),
    "ce_fp16": ("mnist", [_stages(CE), "engine.precision=fp16"]),
    # gpu_check.sh's network and step (ResNet-32, CE, batch 128 there): its ops per step
    "ce_resnet32": ("mnist", [_stages("{method: ce, epochs: 1, batch_size: 16}"), "model.arch=resnet32"]),
    "ce_fp32_checkpointing_accumulate": ("mnist", [_stages("{method: ce, epochs: 1, batch_size: 16, accumulate: 2}"),
                                                   "engine.precision=fp32", "model.checkpointing=true"]),
    "baselines": ("mnist", [_stages("{method: cb_reweight, epochs: 1, batch_size: 16, method_args: {drw_epoch: 0}}",
                                    "{method: focal, epochs: 1, batch_size: 16, method_args: {beta: 0.99}}",
                                    "{method: sqrt_resample, epochs: 1, batch_size: 16}",
                                    "{method: progressive_resample, epochs: 1, batch_size: 16}",
                                    "{method: balanced_softmax, epochs: 1, batch_size: 16}",
                                    "{method: logit_adjust, epochs: 1, batch_size: 16, method_args: {posthoc: true}}")]),
    "ldam_drw": ("mnist", [_stages("{method: ldam_drw, epochs: 2, batch_size: 16, method_args: {drw_epoch: 1}}"), "model.head=cosine"]),
    "decoupled": ("mnist", [_stages(CE, "{method: crt, epochs: 1, batch_size: 16}", "{method: lws, epochs: 1, batch_size: 16}",
                                    "{method: tau_norm, epochs: 0, batch_size: 16}", "{method: cb_resample, epochs: 1, batch_size: 16}"),
                            "data.max_per_class=30", "data.val_per_class=2"]),
    "bns_simclr_probe": ("cifar", [_stages("{method: bns, epochs: 1, batch_size: 16, augment: {policy: simclr, strength: 2.0}}",
                                           "{method: linear_probe, epochs: 1, batch_size: 16, method_args: {per_class: 3}}")]),
    "ipdpp": ("mnist", [_stages(CE, "{method: ipdpp, epochs: 2, batch_size: 16, method_args: {redraw_every: 1}}")]),
    "ipdpp_simclr_views": ("cifar", [_stages(CE, "{method: ipdpp, epochs: 1, batch_size: 16, augment: {policy: simclr}}")]),
    "mixup_pif_h2tf": ("mnist", [_stages("{method: ce+mixup+pif, epochs: 1, batch_size: 16}",
                                         f"{{method: crt+h2tf, epochs: 1, batch_size: 16, {HEAD}}}")]),
    "pih2t_authors_pif": ("mnist", [_stages("{method: ce+pih2t, epochs: 1, batch_size: 16}",
                                            f"{{method: crt+pih2t, epochs: 1, batch_size: 16, {HEAD}}}")]),
    "mislas": ("mnist", [_stages("{method: ce+mixup, epochs: 1, batch_size: 16}", f"{{method: mislas+h2tf, epochs: 1, batch_size: 16, {HEAD}}}")]),
    "gcl": ("mnist", [_stages("{method: gcl+mixup, epochs: 1, batch_size: 16}",
                              f"{{method: gcl+mixup, epochs: 1, batch_size: 16, {HEAD}, method_args: {{train_cls: true}}}}"),
                      "model.head=cosine"]),
    "ride": ("mnist", [_stages("{method: ride+pif, epochs: 1, batch_size: 16, method_args: {drw_epoch: 0, pif: {form: equivariant}}}",
                               f"{{method: ride+h2tf, epochs: 1, batch_size: 16, {HEAD}}}"),
                       "model.arch=ride_resnet8", "model.head=cosine"]),
    # PI-H2T's controls: the affine / fixed-scale PIF, the convex fusion with the donor's
    # BatchNorm in evaluation mode, MiSLAS's class-aware sampler with the BatchNorm refresh (ours)
    "pif_controls_convex": ("mnist", [_stages("{method: ce+mixup+pif, epochs: 1, batch_size: 16, method_args: {pif: {form: affine}}}",
                                              f"{{method: crt+h2tf, epochs: 1, batch_size: 16, {HEAD}, "
                                              "method_args: {h2tf: {form: convex, donor_bn: eval}}}")]),
    "pif_scale_class_aware": ("mnist", [_stages("{method: ce+pif, epochs: 1, batch_size: 16, method_args: {pif: {form: scale}}}",
                                                "{method: mislas+bnrefresh, epochs: 1, batch_size: 16, sampler: class_aware, train: head}"),
                                        "data.max_per_class=30"]),
    # features once, heads many: head stages on cached features, on the pretrained EfficientNet-Lite0
    "lite0_cached_features": ("mnist", [_stages("{method: logit_adjust, epochs: 2, batch_size: 16, train: head, augment: false, "
                                                "cache_features: true}",
                                                "{method: crt, epochs: 1, batch_size: 16, augment: false, cache_features: true}",
                                                "{method: logit_adjust, epochs: 1, batch_size: 16, train: 'last:2'}"),
                                        "model.arch=efficientnet_lite0", "model.pretrained=true", "data.image_size=32"]),
    "rrc_folder_prepared": ("folder_prepared", [_stages("{method: ce, epochs: 1, batch_size: 8, augment: {policy: rrc}}")]),
    "folder_decoded": ("folder_decoded", [_stages("{method: ce, epochs: 1, batch_size: 8}")]),
}

NAMES = list(PIPELINES) + ["kill_resume", "predict_export"]
