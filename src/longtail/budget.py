"""``--budget MINUTES``: fit a run to the time its user has, before it starts.

The plan is made from what this machine measures, not from a table: the run's network is timed
on a few batches of random images (a forward pass, and a training step with the stage's
trainable parts) at each candidate input size, and the images are counted. Then:

- **input size** (a pretrained backbone on image files left at ``data.image_size: 0``): the
  largest of the weights' own size, 192, 160, 128 and 96 px whose fixed costs (decoding, each
  feature pass of a ``cache_features`` stage, each stage's evaluation) take at most half the
  budget; other runs keep their size;
- **epochs**: every stage that trains through the images gets the same share of its configured
  epochs (never more) so that the whole fits; a ``cache_features`` stage keeps its epochs
  (milliseconds each);
- **which stages run**: a stage after the first whose share rounds to no epoch is left out.

It says what it chose and what a larger budget would buy. Times are estimates: decoding is
priced at :data:`DECODE_S` an image, and a step's cost at batch 32 stands for the stage's batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import torch

from longtail.config import RunConfig
from longtail.errors import LongtailError

SIZES = (224, 192, 160, 128, 96)
# Pillow decoding and resizing one photo of a few hundred pixels, on one core (the folder of
# docs/results/own_folder.md's measurement decoded at about 250 images/s on 2 cores)
DECODE_S = 0.004
PROBE_BATCH = 32


@dataclass
class Counts:
    train: int
    evaluated: int  # test + validation images, evaluated after every stage
    files: bool  # decoded from image files (not arrays already in memory)


def count_images(cfg: RunConfig, splits=None) -> Counts:
    """Training and evaluated images: from ``splits`` when they are built, else counted from the
    files (an image folder's listing and its split fractions, or the list files' lines)."""
    d = cfg.data
    if splits is not None:
        ev = len(splits.test) + (len(splits.val) if splits.val is not None else 0)
        return Counts(len(splits.train), ev, d.dataset not in ("fashion_mnist", "mnist", "cifar10", "cifar100"))
    from pathlib import Path

    from longtail.data import formats

    root = Path(d.root).expanduser()
    if d.dataset == "image_folder":
        if (root / "train").is_dir():
            n = [len(formats.read_image_folder(root / s)[0]) if (root / s).is_dir() else 0 for s in ("train", "test", "val")]
            return Counts(n[0], n[1] + n[2], True)
        total = len(formats.read_image_folder(root)[0])
        train = round(total * (1 - d.test_fraction - d.val_fraction))
        return Counts(train, total - train, True)
    lists = [formats.read_list_file(Path(p).expanduser(), root, d.num_classes or None) if p else None
             for p in (d.train_list, d.test_list, d.val_list)]
    return Counts(len(lists[0][0]), sum(len(x[0]) for x in lists[1:] if x), True)


def candidate_sizes(cfg: RunConfig) -> list[int]:
    """Input sizes the plan may choose (empty: the run's own size stands)."""
    from longtail.models import PRETRAINED, pretrained_data_config

    m, d = cfg.model, cfg.data
    if d.image_size or d.dataset not in ("image_folder", "imagenet_lt", "places_lt", "inat2018", "list"):
        return []
    if not (m.pretrained or m.weights) or not (m.arch in PRETRAINED or m.arch.startswith("timm:")):
        return []
    native = int(pretrained_data_config(m.arch)["input_size"][-1])
    return [native] + [s for s in SIZES if s < native]


class Probe:
    """Seconds an image of the run's network at a size: a forward pass in evaluation mode, and
    a training step of a stage (its trainable parts, BatchNorm as it runs), on random images."""

    def __init__(self, cfg: RunConfig, channels: int, num_classes: int):
        from longtail.engine.runtime import resolve_precision, setup_process
        from longtail.models import build_model

        self.cfg = cfg
        self.device = setup_process(cfg.engine)
        precision = resolve_precision(cfg.engine.precision, self.device)
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        torch.manual_seed(0)
        self.model = build_model(cfg.model.arch, num_classes, channels, cfg.model.head).to(self.device)
        if cfg.engine.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.channels, self.num_classes = channels, num_classes
        self._seen: dict = {}

    def _x(self, size: int) -> torch.Tensor:
        x = torch.randn(PROBE_BATCH, self.channels, size, size, device=self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.engine.channels_last else x

    def _timed(self, fn, repeats: int = 2) -> float:
        fn()  # untimed: the first call allocates
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t) / repeats / PROBE_BATCH

    def forward(self, size: int) -> float:
        key = ("fwd", size)
        if key not in self._seen:
            m, x = self.model.eval(), self._x(size)

            def run():
                with torch.no_grad(), torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
                    m.pool(m.features(x))

            self._seen[key] = self._timed(run)
        return self._seen[key]

    def step(self, size: int, rs) -> float:
        key = ("step", size, rs.train, rs.backbone_bn)
        if key not in self._seen:
            self._seen[key] = self._timed(self._step_fn(size, rs))
        return self._seen[key]

    def counts(self, size: int, rs) -> tuple[int, float]:
        """(ops, floating-point operations) of one training step of ``PROBE_BATCH`` images."""
        from longtail.engine.cost import counted

        step = self._step_fn(size, rs)
        step()  # the first call allocates
        return counted(step)

    def _step_fn(self, size: int, rs):
        """One training step of the stage's trainable parts on random images, as a function."""
        from longtail.engine.trainer import Trainer

        m, x = self.model, self._x(size)
        y = torch.randint(self.num_classes, (PROBE_BATCH,), device=self.device)
        for p in m.parameters():
            p.requires_grad_(rs.train == "all")
        parts = [m.head] + (Trainer._last_parts(m, rs) if rs.train.startswith("last:") else [])
        for part in parts:
            for p in part.parameters():
                p.requires_grad_(True)
        m.train()
        if rs.backbone_bn == "frozen":
            m.backbone.eval()
        params = [p for p in m.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=1e-6)

        def run():
            with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
                if rs.train == "head":
                    with torch.no_grad():
                        emb = m.pool(m.features(x))
                else:
                    emb = m.pool(m.features(x))
                loss = torch.nn.functional.cross_entropy(m.head(emb).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return run


@dataclass
class StageCost:
    name: str
    epochs: int
    epoch_s: float  # seconds an epoch through the images (0: cached features)
    fixed_s: float  # its feature pass and its evaluation
    optional: bool  # may be left out when no epoch of it fits


def stage_costs(cfg: RunConfig, size: int, counts: Counts, probe: Probe) -> tuple[float, list[StageCost]]:
    """(decoding seconds, each stage's cost) at input ``size``."""
    from longtail.engine.trainer import resolve_stage

    fwd = probe.forward(size)
    decode = (counts.train + counts.evaluated) * DECODE_S / max(1, torch.get_num_threads()) if counts.files else 0.0
    out, fresh = [], True  # fresh: the backbone changed since the last feature pass
    for i, st in enumerate(cfg.stages):
        if i < cfg.start_stage:
            continue
        rs = resolve_stage(i, st)
        evaluated = counts.evaluated * fwd
        if st.cache_features:
            fixed = (counts.train + counts.evaluated) * fwd if fresh else 0.0
            out.append(StageCost(rs.name, st.epochs, 0.0, fixed, False))
            fresh = False
            continue
        per_image = probe.step(size, rs) if st.epochs else 0.0
        out.append(StageCost(rs.name, st.epochs, counts.train * per_image, evaluated, i > cfg.start_stage))
        fresh = fresh or rs.train != "head"
    return decode, out


def plan(cfg: RunConfig, minutes: float, log=print, splits=None) -> RunConfig:
    """``cfg`` fitted to ``minutes`` (module docstring); says what it chose."""
    budget = 60.0 * minutes
    if budget <= 0:
        raise LongtailError(f"--budget {minutes:g}: a budget is a positive number of minutes", "give e.g. --budget 5")
    sizes = candidate_sizes(cfg)
    counts = count_images(cfg, splits)
    channels = splits.train.channels if splits is not None else (cfg.data.channels or 3)
    num_classes = splits.train.num_classes if splits is not None else 2
    probe = Probe(cfg, channels, num_classes)
    own = splits.train.image_size if splits is not None else (cfg.data.image_size or 224)
    options = []
    for size in sizes or [own]:
        decode, stages = stage_costs(cfg, size, counts, probe)
        fixed = decode + sum(s.fixed_s for s in stages)
        full = fixed + sum(s.epochs * s.epoch_s for s in stages)
        options.append((size, decode, stages, fixed, full))
    # the largest size whose fixed costs take at most half the budget, else the smallest
    chosen = next((o for o in options if o[3] <= 0.5 * budget), options[-1])
    size, decode, stages, fixed, full = chosen
    if fixed >= budget:
        needed = decode + sum(s.fixed_s for s in stages if not s.optional)  # the stages that cannot be left out
        raise LongtailError(f"--budget {minutes:g} min: the fixed work alone (decoding, feature passes, evaluations) takes "
                            f"about {fixed / 60:.1f} min here at {size} px", f"give at least {math.ceil(needed / 60 + 0.5)} minutes")
    training = sum(s.epochs * s.epoch_s for s in stages)
    share = 1.0 if training <= budget - fixed else (budget - fixed) / training
    epochs = {s.name: s.epochs if not s.epoch_s else int(math.floor(s.epochs * share)) for s in stages}
    first = stages[0]
    if first.epoch_s and epochs[first.name] < 1:
        raise LongtailError(f"--budget {minutes:g} min does not fit one epoch of {first.name} ({first.epoch_s:.0f} s an epoch "
                            f"here, {fixed:.0f} s of fixed work)", f"give at least {math.ceil((fixed + first.epoch_s) / 60)} minutes")
    dropped = [s.name for s in stages if s.optional and s.epochs and epochs[s.name] == 0]
    # the plan's own words, then the config it stands for
    what = []
    if sizes:
        why = "the weights' own" if size == sizes[0] else f"{sizes[0]} px would take {options[0][3]:.0f} s before any training"
        what.append(f"{size} px ({why})")
    for s in stages:
        if s.name in dropped:
            what.append(f"{s.name} left out (an epoch takes {s.epoch_s:.0f} s)")
        elif not s.epoch_s:
            what.append(f"{s.name} {s.epochs} epochs on cached features (pass ~{s.fixed_s:.0f} s)")
        else:
            cut = f" of {s.epochs}" if epochs[s.name] < s.epochs else ""
            what.append(f"{s.name} {epochs[s.name]}{cut} epochs (~{s.epoch_s:.0f} s each)")
    used = fixed + sum(epochs[s.name] * s.epoch_s for s in stages if s.name not in dropped)
    log(f"budget {minutes:g} min: {'; '.join(what)}; about {used / 60:.1f} min in all (estimated here: "
        f"{'decoding ~%.0f s, ' % decode if decode else ''}every pass timed on random images)")
    more = []
    if full > budget:
        more.append(f"every stage at its full epochs in about {math.ceil(full / 60)} min")
    if sizes and size != sizes[0]:
        more.append(f"{sizes[0]} px (the weights' own) from about {math.ceil(2 * options[0][3] / 60)} min")
    if more:
        log(f"a larger budget would buy {' and '.join(more)}")
    new = []
    for i, st in enumerate(cfg.stages):
        name = st.name or f"stage{i + 1}"
        if i >= cfg.start_stage and name in dropped:
            continue
        new.append(replace(st, epochs=epochs.get(name, st.epochs)))
    data = replace(cfg.data, image_size=size, resize=int(round(size / _crop_pct(cfg)))) if sizes else cfg.data
    return replace(cfg, data=data, stages=new)


def _crop_pct(cfg: RunConfig) -> float:
    from longtail.models import pretrained_data_config

    return float(pretrained_data_config(cfg.model.arch).get("crop_pct", 1.0))
