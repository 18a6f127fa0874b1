"""Features once, heads many: a stage that trains only the classifier on a frozen backbone
(``stages.<stage>.cache_features: true``) computes the pooled features of the training,
validation and test images once, keeps them on disk, and trains and evaluates the head on those
tensors. An epoch then costs milliseconds instead of a pass of the backbone.

Nothing about the result changes: with BatchNorm in evaluation mode and no augmentation, the
backbone maps each image to the same feature every epoch, so the head sees the same inputs in
the same order (the engine's seeded epoch draws) as it would through the images. The features
are computed as evaluation computes them (centre crop, the run's precision) and stored in
float32 (exactly the values a bf16 pass produced).

The cache is keyed by what the features depend on: the backbone's weights (and a learned neck),
the images and labels of every split, and the preprocessing (input size, normalisation,
precision, memory format). Another run with the same backbone on the same data, another head
method or seed, reads the features instead of computing them.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import torch
import torch.nn as nn

from longtail.files import write_atomic

VERSION = "features-1"


def refusal(cfg, rs) -> str | None:
    """Why stage ``rs`` (a resolved stage of run config ``cfg``) cannot train on cached
    features, or None when it can: the features must be the same every epoch, and the method
    must need nothing but them."""
    from longtail.methods.base import method_class, split_method

    if rs.cfg.epochs == 0:  # a post-hoc stage trains nothing: only what its method needs matters
        pass
    elif rs.train != "head":
        return f"it trains the backbone (train: {rs.train}), so the features change every step"
    elif rs.backbone_bn != "frozen":
        return "BatchNorm statistics are updated by every batch (backbone_bn: train), so the features change"
    elif cfg.augment_for(rs.cfg) is not None:
        return "each epoch's augmented views differ; set augment: false on the stage"
    base, _, plugins = split_method(rs.cfg.method, rs.cfg.method_args)
    for mid in [base] + [p for p, _ in plugins]:
        why = needs_images(method_class(mid))
        if why:
            return f"'{mid}' {why}"
    return None


def needs_images(cls) -> str:
    """What a method does with images that pooled features cannot stand for ("" for nothing)."""
    from longtail.methods.base import Method, Plugin

    if getattr(cls, "needs_images", ""):
        return cls.needs_images
    if cls.training_step not in (Method.training_step, Plugin.training_step):
        return "reads the images in its training step"
    if cls.transform_features not in (Method.transform_features, Plugin.transform_features):
        return "changes the feature map in training"
    if cls.extra_samplers:
        return "draws extra batches of images"
    return ""


class FeatureView(nn.Module):
    """The model as a training step sees it on cached features: ``features`` and ``pool`` are
    done, the head is the model's own (read at each call: a method may replace it)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def head(self) -> nn.Module:
        return self.model.head

    @staticmethod
    def features(x):
        return x

    @staticmethod
    def pool(x):
        return x

    def forward(self, x):
        return self.model.head(x)


def cache_dir(data_cache_dir: str = "") -> Path:
    """``data.cache_dir``/features, else ``$LONGTAIL_CACHE/features``, else ``~/.cache/longtail/features``."""
    from longtail.data.cache import cache_base

    return (Path(data_cache_dir).expanduser() if data_cache_dir else cache_base()) / "features"


def _hash_tensor(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous().reshape(-1)
    h.update(f"{t.dtype}{t.numel()}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _hash_images(h, data) -> None:
    images = data.images
    if isinstance(images, torch.Tensor):
        _hash_tensor(h, images)
    else:  # files: their paths, sizes and modification times, and the decode size (the prepared shards' key)
        from longtail.data.cache import cache_key

        h.update(cache_key(images.paths, images.shape[-1], images.shape[1]).encode())
    _hash_tensor(h, data.labels)


def feature_key(model: nn.Module, splits: dict, preprocessing: dict) -> str:
    """A hash of everything the pooled features depend on (module docstring)."""
    h = hashlib.sha256(json.dumps([VERSION, preprocessing], sort_keys=True).encode())
    parts = [model.backbone] + ([model.neck] if getattr(model, "neck", None) is not None else [])
    for part in parts:
        for k, v in sorted(part.state_dict().items()):
            h.update(k.encode())
            _hash_tensor(h, v)
    for name in sorted(splits):
        h.update(name.encode())
        _hash_images(h, splits[name])
    return h.hexdigest()[:24]


def load_or_compute(trainer, model) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{split: (features, labels)}`` for every split of the run, from the cache or computed
    now (and kept); on the trainer's device."""
    splits = {"train": trainer.train_set, "test": trainer.splits.test}
    if trainer.splits.val is not None:
        splits["val"] = trainer.splits.val
    pre = {"size": trainer.train_set.image_size, "mean": list(trainer.mean), "std": list(trainer.std),
           "precision": trainer.precision, "channels_last": trainer.cfg.engine.channels_last}
    key = feature_key(model, splits, pre)
    path = cache_dir(trainer.cfg.data.cache_dir) / f"{key}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            trainer.log(f"features: read from {path} ({', '.join(f'{n} {len(stored[n][0]):,}' for n in splits)})")
            return {n: (stored[n][0].to(trainer.device), stored[n][1].to(trainer.device)) for n in splits}
        except Exception as e:  # a damaged file: computed again, and replaced
            trainer.log(f"note: features: {path} is unreadable ({type(e).__name__}), computing them again")
    t = time.perf_counter()
    # on a CPU a pass in batches of 32 runs about twice as fast as in 512s (Lite0 at 96 px, 2
    # cores: 350 against 151 images/s in fp32): a small batch's activations stay in cache
    bs = 32 if trainer.device.type == "cpu" else 0
    out = {n: trainer.predict(model, data, "embeddings", bs) for n, data in splits.items()}
    seconds = time.perf_counter() - t
    if trainer.dist.main:
        buf = io.BytesIO()
        torch.save({n: (f.cpu(), y.cpu()) for n, (f, y) in out.items()}, buf)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buf.getvalue())
    n = sum(len(v[0]) for v in out.values())
    trainer.log(f"features: {n:,} images through the frozen backbone in {seconds:.0f} s "
                f"({n / max(seconds, 1e-9):.0f} images/s), kept in {path}")
    return out
