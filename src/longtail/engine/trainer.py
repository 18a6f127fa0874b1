"""The training engine: a run is a list of stages, each a method trained for some epochs.

The engine owns everything that is the same for every method: data on the device, epoch
draws, batch augmentation, the optimiser and schedule, mixed precision, checkpoints and
resume, NaN guards, evaluation and the run folder. A method (``longtail.methods``) supplies
the loss, the sampler, feature hooks and post-hoc corrections; the engine never asks which
method it runs.

Every random draw of an epoch (sampler order, augmentation, dropout) is seeded by
``(seed, stage, epoch)``, so a run resumed from an end-of-epoch checkpoint replays exactly
what an uninterrupted run does.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from longtail.config import AugmentConfig, RunConfig, StageConfig, dump_config
from longtail.data.augment import augment, center_crop, normalize
from longtail.data.datasets import Splits, build_splits, dataset_info
from longtail.data.device import to_device
from longtail.data.loader import BatchSource
from longtail.data.images import LabeledImages
from longtail.data.samplers import draw_epoch
from longtail.engine import checkpoint as ckpt
from longtail.engine import distributed
from longtail.engine.runtime import RunLock, derive_seed, generator, machine_description, resolve_precision, setup_process
from longtail.engine.schedule import learning_rate
from longtail.errors import LongtailError
from longtail.files import write_atomic
from longtail.progress import progress
from longtail.evaluation.metrics import compute_metrics, headline, headline_line
from longtail.methods import Batch, Plugin, StageContext, make_method, method_class, split_method
from longtail.methods.base import check_batch_devices
from longtail.models import build_model

CHECKPOINT = "checkpoint.pt"


def load_weights(path: str | Path) -> dict:
    """A model state dict from a run folder (its model.pt) or a model.pt file."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise LongtailError(f"model.init: no weights at {p}", "point model.init at a finished run folder or its model.pt")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged or foreign file
        raise LongtailError(f"model.init: cannot load {p} ({type(e).__name__}: {e})", "use a model.pt written by longtail") from None


def check_run(cfg: RunConfig) -> None:
    """Every error a config can hold that no data is needed to see."""
    from longtail.methods.base import check_method_spec
    from longtail.models import MULTI_EXPERT, check_arch, check_pretrained

    check_arch(cfg.model.arch)
    check_pretrained(cfg.model.arch, cfg.model.pretrained)
    if cfg.engine.tensorboard:
        from longtail.engine.tensorboard import check_available

        check_available()
    if cfg.model.weights and not Path(cfg.model.weights).expanduser().is_file():
        raise LongtailError(f"model.weights: no such file {cfg.model.weights}", "give the path of a saved state dict")
    for i, st in enumerate(cfg.stages):
        check_method_spec(st.method, st.method_args, f"stages.{i} ({st.name or st.method})")
        if st.cache_features:
            from longtail.engine.features import refusal

            why = refusal(cfg, resolve_stage(i, st))
            if why:
                raise LongtailError(f"stages.{i} ({st.name or st.method}): cache_features cannot stand for the images here: {why}",
                                    f"set stages.{i}.cache_features: false")
        needs = method_class(st.method.split("+")[0]).one_head
        if needs and cfg.model.arch in MULTI_EXPERT:
            raise LongtailError(f"stages.{i} ({st.name or st.method}): {st.method} cannot run on {cfg.model.arch}'s expert heads: "
                                f"{needs}", "use crt, linear_probe or a plug-in stage (h2tf) on a multi-expert model, "
                                "or a single-head model.arch")


@dataclass
class ResolvedStage:
    index: int
    name: str
    cfg: StageConfig
    sampler: str
    train: str
    reinit_head: bool
    backbone_bn: str


def resolve_stage(i: int, cfg: StageConfig) -> ResolvedStage:
    """Fill the stage keys the config left empty from the method's own defaults."""
    base = cfg.method.split("+")[0]
    d = method_class(base).stage_defaults
    train = cfg.train or d.get("train", "all")
    return ResolvedStage(
        index=i,
        name=cfg.name or f"stage{i + 1}",
        cfg=cfg,
        sampler=cfg.sampler or d.get("sampler", "instance"),
        train=train,
        reinit_head=d.get("reinit_head", False) if cfg.reinit_head is None else cfg.reinit_head,
        # BatchNorm statistics: frozen (running statistics, not updated) by default when only
        # the head trains, as in Kang et al.; H2T's shift_bn is backbone_bn: train
        # (and when only the backbone's last parts train: a small data set's batches would
        # replace the statistics the pretrained weights were trained with)
        backbone_bn=cfg.backbone_bn or d.get("backbone_bn", "train" if train == "all" else "frozen"),
    )


@dataclass
class RunState:
    """What a checkpoint restores besides weights."""

    stage: int = 0  # index of the stage in progress (== len(stages) when done)
    epoch: int = 0  # epochs finished in that stage
    history: list[dict] = field(default_factory=list)
    stage_metrics: list[dict] = field(default_factory=list)


class Trainer:
    def __init__(self, cfg: RunConfig, out_dir: Path | str, resume: bool = False, splits: Splits | None = None,
                 log=None):
        self.cfg = cfg
        self.out = Path(out_dir)
        self.resume = resume
        check_run(cfg)  # methods, plug-ins, their arguments and the arch: before any data is read
        self.stages = [resolve_stage(i, s) for i, s in enumerate(cfg.stages)]
        self.device = setup_process(cfg.engine)
        self.dist, rank_device = distributed.init_distributed(cfg.engine.device)
        self.device = rank_device or self.device
        log = log or (lambda msg: print(msg, flush=True))
        self.log = log if self.dist.main else (lambda msg: None)
        input_note, data_cfg = self._follow_pretrained_input()
        # rank 0 reads (and on first use prepares, data.cache) the images while the others wait,
        # then they read its prepared copy
        if self.dist.active and not self.dist.main:
            distributed.barrier(self.dist)
        self.splits = splits or build_splits(data_cfg)
        if self.dist.active and self.dist.main:
            distributed.barrier(self.dist)
        if input_note:
            self.log(f"note: {input_note}")
        for note in self.splits.notes:  # (a warning says so itself)
            self.log(note if note.startswith("warning:") else f"note: {note}")
        self.train_set = self.splits.train
        self.num_classes = self.train_set.num_classes
        self.class_counts = torch.tensor(self.train_set.class_counts(), dtype=torch.float32)
        self.source = BatchSource(self.train_set, self.device, cfg.data.workers)
        self._sources: dict[int, BatchSource] = {}
        self.state = RunState()
        info, ch = self.splits.info, self.train_set.channels
        # a data set read with another channel count than its statistics (grey ImageNet, say)
        # uses the channel-mean of its statistics
        mean, std = (self._pretrained["mean"], self._pretrained["std"]) if self._pretrained else (info.mean, info.std)
        self.mean = tuple(mean) if len(mean) == ch else (sum(mean) / len(mean),) * ch
        self.std = tuple(std) if len(std) == ch else (sum(std) / len(std),) * ch
        self._use_precision(resolve_precision(cfg.engine.precision, self.device))
        if self.device.type == "cpu" and self.precision == "bf16" and cfg.engine.precision == "auto":
            self.log("note: engine.precision auto: bf16 autocast on this CPU (it has native bf16 instructions); "
                     "engine.precision: fp32 trains in fp32")
        if self.device.type == "cuda" and cfg.engine.precision == "auto":
            torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside autocast (losses) on TF32 cores
            torch.backends.cudnn.allow_tf32 = True
        self._step = None  # (method, its step module) of the stage in progress
        self._features = None  # {split: (features, labels)} while a cache_features stage runs
        self._last_save = time.monotonic()
        self._save_seconds = 0.0  # how long the last checkpoint took to write
        self._wall_before = 0.0  # seconds earlier processes spent on this run (resume)
        self._t_run = time.perf_counter()
        # CUDA graphs replay the compiled backbone; on a CPU torch.compile skips them itself
        self.graphs = cfg.engine.cuda_graphs and self.device.type == "cuda"
        if cfg.engine.cuda_graphs and not self.graphs:
            self.log(f"note: engine.cuda_graphs needs a CUDA device; on {self.device.type} the compiled backbone runs without graphs")
        # on a GPU one kernel for all the gradients' norms, not one a tensor (None: torch decides)
        self.foreach = True if self.device.type == "cuda" else None

    def _use_precision(self, precision: str):
        self.precision = precision
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler(enabled=precision == "fp16" and self.device.type == "cuda")

    def _keep_started_precision(self, started: str | None):
        """``engine.precision: auto`` resolves by machine, so a run resumed on another machine
        (a CPU with or without native bf16) would change precision halfway; it keeps the one it
        started with instead. A precision the config names is used as named."""
        if started is None or started == self.precision:
            return
        if self.cfg.engine.precision != "auto":
            self.log(f"note: this run started in {started}; it continues in {self.precision} (engine.precision)")
        elif started == "fp16" and self.device.type != "cuda":
            self.log(f"note: this run started in fp16 on a GPU; fp16 needs one, so it continues in {self.precision}")
        else:
            self.log(f"note: engine.precision auto: this run started in {started} and continues in it "
                     f"(auto alone would pick {self.precision} here)")
            self._use_precision(started)

    # ------------------------------------------------------------------------------ model
    def _follow_pretrained_input(self):
        """A backbone started from published weights (``model.pretrained``, or ``model.weights`` of
        a timm model or of an arch with published weights) reads images as those weights were
        trained: their normalisation, and, for file-backed data left at ``image_size: 0``, their
        input size and resize (crop_pct). Returns what the log should say ("" for none) and the
        data section to build the splits from (the config itself is left as written)."""
        import dataclasses

        from longtail.models import PRETRAINED, pretrained_data_config

        m, d = self.cfg.model, self.cfg.data
        self._pretrained = None
        if not (m.arch.startswith("timm:") or m.arch in PRETRAINED) or not (m.pretrained or m.weights):
            return "", d
        dc = pretrained_data_config(m.arch)  # the weights' data config, without loading them
        self._pretrained = dc
        size = int(dc["input_size"][-1])
        said = f"normalisation of {m.arch}'s weights (mean {tuple(round(v, 3) for v in dc['mean'])})"
        if not d.image_size and (dataset_info(d.dataset).list_based or d.dataset == "image_folder"):
            d = dataclasses.replace(d, image_size=size, resize=d.resize or int(round(size / dc.get("crop_pct", 1.0))))
            said += f", input {size} px from {d.resize} px (the weights' input size and crop_pct)"
        elif not d.image_size:
            said += (f"; the images stay at their own size (the weights were trained at {size} px: data.image_size "
                     "resizes them, e.g. 96 or 128 for 28-32 px images)")
        return said, d

    def _build_model(self) -> nn.Module:
        torch.manual_seed(derive_seed(self.cfg.seed, "model"))
        m = self.cfg.model
        model = build_model(m.arch, self.num_classes, self.train_set.channels, m.head, m.pretrained, m.weights)
        if self.cfg.model.init:
            try:
                model.load_state_dict(load_weights(self.cfg.model.init))
            except RuntimeError as e:
                raise LongtailError(f"model.init: weights in {self.cfg.model.init} do not fit {self.cfg.model.arch}/"
                                    f"{self.cfg.model.head} ({str(e).splitlines()[0]})", "use a run with the same model section") from None
        if self.cfg.model.checkpointing:
            from longtail.models.checkpointing import enable_checkpointing

            enable_checkpointing(model.backbone)
        if self.cfg.engine.sync_bn and self.dist.active:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # GPU only (PyTorch's SyncBatchNorm)
        model = self._to_device(model)
        if self.cfg.engine.compile:
            # in place: the backbone's forward is compiled, its state-dict keys stay as they are;
            # reduce-overhead records its forward and backward as CUDA graphs (one launch each
            # instead of one a kernel) and replays them while the shapes stay the same
            model.backbone.compile(dynamic=False, mode="reduce-overhead" if self.graphs else None)
        return model

    def _to_device(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.cfg.engine.channels_last else module

    def _prep(self, x_uint8: torch.Tensor, gen: torch.Generator | None, aug: AugmentConfig | None = None) -> torch.Tensor:
        """uint8 batch -> augmented by ``aug`` (when given), normalised float batch."""
        size = self.train_set.image_size
        x = normalize(augment(x_uint8, aug, gen, size) if aug is not None else center_crop(x_uint8, size), self.mean, self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.cfg.engine.channels_last else x

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    # ------------------------------------------------------------------------- evaluation
    @torch.no_grad()
    def predict(self, model: nn.Module, data, what: str = "logits", batch_size: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (or pooled embeddings) of every image of ``data``, in order, no augmentation, in
        batches of ``batch_size`` (0: engine.eval_batch_size)."""
        cached = self._cached_features(data)
        if cached is not None:
            return self._predict_features(model, *cached, what)
        was_training = model.training
        model.eval()
        source = data if isinstance(data, BatchSource) else self._source(data)
        outs, labels = [], []
        # each rank predicts positions rank, rank + W, ... (no padding: nothing duplicated)
        order = torch.arange(self.dist.rank, len(source), self.dist.world)
        bs = batch_size or self.cfg.engine.eval_batch_size
        bar = self._progress(math.ceil(len(order) / bs), what if what == "embeddings" else "evaluate", "batch") if len(order) > 4 * bs else None
        for x, y, _ in source.batches(order, bs):
            if bar is not None:
                bar.update(1)
            if self.graphs:
                torch.compiler.cudagraph_mark_step_begin()  # this batch may overwrite the last one's graph outputs
            with self._autocast():
                fmap = model.features(self._prep(x, None))
                # a multi-expert model's embedding: its experts' side by side
                out = model.pool(fmap).flatten(1) if what == "embeddings" else model.head(model.pool(fmap))
            outs.append(out.float())
            labels.append(y)
        if bar is not None:
            bar.close()
        model.train(was_training)
        width = self.num_classes if what == "logits" else model.feature_dim
        out = torch.cat(outs) if outs else torch.zeros(0, width, device=self.device)
        lab = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long, device=self.device)
        n = len(source)
        return distributed.gather_rows(out, order, n, self.dist), distributed.gather_rows(lab, order, n, self.dist)

    def _cached_features(self, data):
        """(features, labels) of ``data`` while a cache_features stage runs, else None."""
        if self._features is None:
            return None
        names = {id(self.train_set): "train", id(self.splits.test): "test", id(self.splits.val): "val"}
        return self._features.get(names.get(id(data)))

    def _predict_features(self, model, feats, labels, what: str):
        if what == "embeddings":
            return feats, labels
        was_training = model.training
        model.eval()
        bs = self.cfg.engine.eval_batch_size
        with self._autocast():
            out = [model.head(feats[i:i + bs]).float() for i in range(0, len(feats), bs)]
        model.train(was_training)
        return (torch.cat(out) if out else torch.zeros(0, self.num_classes, device=self.device)), labels

    def _batch_input(self, x, gen, aug):
        """A training batch as the step takes it: augmented, normalised images, or the cached
        features as they are."""
        return x if self._features is not None else self._prep(x, gen, aug)

    def _source(self, data: LabeledImages) -> BatchSource:
        """One batch source per image set, kept for the run (decoding workers persist)."""
        if data is self.train_set:
            return self.source
        if id(data) not in self._sources:
            self._sources[id(data)] = BatchSource(data, self.device, self.cfg.data.workers)
        return self._sources[id(data)]

    def evaluate(self, model, method, split: str = "test") -> dict:
        data = self.splits.test if split == "test" else self.splits.val
        logits, labels = self.predict(model, data)
        logits = method.adjust_logits(logits) if method is not None else logits
        d = self.cfg.data
        return compute_metrics(logits.cpu(), labels.cpu(), self.class_counts.long().tolist(), d.many_threshold,
                               d.few_threshold, self.cfg.eval.ece_bins)

    # ---------------------------------------------------------------------------- stages
    def _context(self, model, rs: ResolvedStage, steps: int) -> StageContext:
        def embed(split: str):
            data = {"train": self.train_set, "val": self.splits.val, "test": self.splits.test}[split]
            return self.predict(model, data, "embeddings")

        return StageContext(
            class_counts=self.class_counts.to(self.device), num_classes=self.num_classes, epochs=rs.cfg.epochs,
            steps_per_epoch=steps, device=self.device, model=model, frozen_backbone=rs.train == "head",
            embed=embed, has_val=self.splits.val is not None, log=self.log, seed=self.cfg.seed, stage_index=rs.index,
            train_labels=self.train_set.labels,
            gather=lambda t: distributed.all_gather_with_grad(t, self.dist),
            broadcast=lambda o: distributed.broadcast_object(o, self.dist),
        )

    def _setup_stage(self, model, rs: ResolvedStage):
        """(Re)build the head, make the method, freeze what the stage keeps fixed, and build
        the optimiser. Deterministic, so resume can replay it before loading a checkpoint."""
        if rs.reinit_head:
            torch.manual_seed(derive_seed(self.cfg.seed, "head", rs.index))
            model.head = self._to_device(model.new_head(self.cfg.model.head, self.num_classes))
        steps = self._steps_per_epoch(rs)
        ctx = self._context(model, rs, steps)
        for p in list(model.backbone.parameters()) + (list(model.neck.parameters()) if model.neck is not None else []):
            p.requires_grad_(rs.train == "all")
        if rs.train.startswith("last:"):
            for part in self._last_parts(model, rs):
                for p in part.parameters():
                    p.requires_grad_(True)
        for p in model.head.parameters():
            p.requires_grad_(True)
        # 'ce+h2tf': the base method, wrapped by each plug-in; method_args holds the base's
        # parameters and one sub-mapping per plug-in
        base, base_args, plugins = split_method(rs.cfg.method, rs.cfg.method_args)
        method = make_method(base, ctx, base_args)
        for plugin, plugin_args in plugins:
            cls = method_class(plugin)
            if not issubclass(cls, Plugin):
                raise LongtailError(f"'{plugin}' in '{rs.cfg.method}' is not a plug-in", "join only plug-ins (e.g. h2tf) to a base method with '+'")
            method = cls(ctx, method, **plugin_args)
        torch.manual_seed(derive_seed(self.cfg.seed, "prepare", rs.index))
        method.prepare()  # may freeze or wrap parts of the head (LWS)
        params = [p for p in model.parameters() if p.requires_grad]
        for m in method.modules():
            m.to(self.device)
            params += [p for p in m.parameters() if p.requires_grad]
        o = rs.cfg.optimizer
        if rs.cfg.epochs == 0:
            opt = None
        elif not params:
            raise LongtailError(f"stage '{rs.name}' ({rs.cfg.method}) has {rs.cfg.epochs} epochs but nothing to train",
                                "give it epochs: 0 (a post-hoc stage) or set train: all / head")
        else:
            params = self._param_groups(params, method, o.decay_1d)
            lr = o.scaled_lr(rs.cfg.batch_size)
            # on a GPU the fused update is one kernel per parameter group, not several a tensor
            fused = {"fused": True} if self.device.type == "cuda" else {}
            if o.name == "sgd":
                opt = torch.optim.SGD(params, lr=lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov, **fused)
            else:
                opt = torch.optim.AdamW(params, lr=lr, betas=tuple(o.betas), weight_decay=o.weight_decay, **fused)
        return method, opt

    @staticmethod
    def _last_parts(model, rs: ResolvedStage) -> list[nn.Module]:
        """``train: last:K``: the backbone's last K parts (its ``tail_groups()`` where it names
        them, else its top-level modules with parameters, in order) and a neck after them."""
        b = model.backbone
        parts = b.tail_groups() if hasattr(b, "tail_groups") else [c for c in b.children() if any(True for _ in c.parameters())]
        k = int(rs.train.split(":")[1])
        if k > len(parts):
            raise LongtailError(f"stage '{rs.name}': train: {rs.train}, but {model.backbone.__class__.__name__} has {len(parts)} parts",
                                f"use last:1 ... last:{len(parts)}, or train: all")
        return parts[-k:] + ([model.neck] if model.neck is not None else [])

    @staticmethod
    def _param_groups(params: list, method, decay_1d: bool) -> list[dict]:
        """The optimiser's groups: by the method's learning-rate factors (``lr_scale``, read
        each step) and, with ``optimizer.decay_1d: false``, no weight decay on 1-D parameters
        (timm's add_weight_decay: biases and norm scales/shifts)."""
        scale = {id(p): f for ps, f in method.lr_scales() for p in ps}
        groups: dict[tuple, dict] = {}
        for p in params:
            key = (scale.get(id(p), 1.0), not decay_1d and p.ndim <= 1)
            g = groups.setdefault(key, {"params": [], "lr_scale": key[0], **({"weight_decay": 0.0} if key[1] else {})})
            g["params"].append(p)
        return [g for _, g in sorted(groups.items(), key=lambda kv: kv[0])]

    def _drop_last(self, cfg: StageConfig) -> bool:
        return cfg.drop_last or self.graphs  # a captured step replays one shape

    def _steps_per_epoch(self, rs: ResolvedStage) -> int:
        n, bs = len(self.train_set), rs.cfg.batch_size
        return max(1, n // bs if self._drop_last(rs.cfg) else math.ceil(n / bs))

    def _set_train_mode(self, model, rs: ResolvedStage):
        model.train()
        if rs.backbone_bn == "frozen":
            model.backbone.eval()

    # ------------------------------------------------------------------------- one epoch
    def _train_epoch(self, model, method, opt, rs: ResolvedStage, epoch: int) -> dict:
        cfg = rs.cfg
        aug = self.cfg.augment_for(cfg)
        gen = generator(self.cfg.seed, "stage", rs.index, "epoch", epoch)
        torch.manual_seed(derive_seed(self.cfg.seed, "torch", rs.index, epoch))
        method.on_epoch_start(epoch)
        pool = method.sample_pool()
        labels = self.train_set.labels
        order = draw_epoch(labels, rs.sampler, gen, self.num_classes, epoch, cfg.epochs, pool=pool)
        extra_orders = {name: distributed.shard(draw_epoch(labels, kind, gen, self.num_classes, epoch, cfg.epochs, num_samples=len(order)), self.dist)
                        for name, kind in method.extra_samplers.items()}
        order = distributed.shard(order, self.dist)  # this rank's part of the same global draw
        bs = self._rank_batch(cfg)
        steps = math.ceil(len(order) / bs)
        if self._drop_last(cfg) and len(order) >= bs:
            steps = len(order) // bs
            order = order[: steps * bs]
        elif len(order) % bs == 1 and steps > 1:
            steps -= 1  # a last batch of one image breaks BatchNorm: drop it
            order = order[: steps * bs]
        self._set_train_mode(model, rs)
        step_module = self._step_module(model, method)
        base_lr = cfg.optimizer.scaled_lr(cfg.batch_size)
        t0 = time.perf_counter()
        # Sums and the non-finite guard live on the device and are read once an epoch (every
        # step on CPU, where reading costs nothing): a .item() or an `if tensor` per step would
        # make the host wait for the GPU every step.
        dev = self.device
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        gnorm_sum = torch.zeros((), dtype=torch.float64, device=dev)
        first_bad = torch.full((2,), -1, dtype=torch.long, device=dev)  # first step of a non-finite loss / grad norm
        bad_value = torch.zeros(2, dtype=torch.float32, device=dev)
        check_every_step = dev.type == "cpu"
        seen = 0
        fp16 = self.scaler.is_enabled()  # fp16 skips steps with non-finite gradients itself
        extra_iters = {n: self.source.batches(o, bs) for n, o in extra_orders.items()}
        bar = self._progress(steps, f"{rs.name} {epoch + 1}/{cfg.epochs}") if self._features is None else None
        for step, (xb, yb, ib) in enumerate(self._train_source().batches(order, bs)):
            if step >= steps:
                break
            lr = learning_rate(cfg.schedule, base_lr, epoch + step / steps, cfg.epochs, 1 / steps)
            for g in opt.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            extra = {n: next(it) for n, it in extra_iters.items()}
            if self.graphs:
                torch.compiler.cudagraph_mark_step_begin()
            opt.zero_grad(set_to_none=True)
            loss = self._gradients(step_module, xb, yb, ib, extra, gen, aug, cfg.accumulate)
            if fp16:
                self.scaler.unscale_(opt)
            params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
            gnorm = torch.nn.utils.get_total_norm([p.grad for p in params], foreach=self.foreach)
            vals = torch.stack([loss.detach().float(), gnorm.float()])
            bad = ~torch.isfinite(vals)
            if fp16:
                bad[1] = False
            new = bad & (first_bad < 0)
            first_bad = torch.where(new, step, first_bad)
            bad_value = torch.where(new, vals, bad_value)
            if check_every_step and bool(bad.any()):
                break
            if self.cfg.engine.grad_clip > 0:
                torch.nn.utils.clip_grads_with_norm_(params, self.cfg.engine.grad_clip, gnorm, foreach=self.foreach)
            gnorm_sum += gnorm.detach().double()
            self.scaler.step(opt)
            self.scaler.update()
            loss_sum += loss.detach().double() * len(yb)
            seen += len(yb)
            if bar is not None:
                bar.update(1)
                if check_every_step or step % 20 == 0 or step == steps - 1:  # on a GPU, reading the loss waits for it
                    bar.set_postfix(loss=f"{float(loss_sum) / max(seen, 1):.4f}", lr=f"{lr:.4g}")
        if bar is not None:
            bar.close()
        bad_steps = first_bad.tolist()  # the epoch's one read of the guard
        if bad_steps[0] >= 0 and (bad_steps[1] < 0 or bad_steps[0] <= bad_steps[1]):
            self._non_finite("loss", float(bad_value[0]), rs, epoch, bad_steps[0])
        if bad_steps[1] >= 0:
            self._non_finite("gradient norm", float(bad_value[1]), rs, epoch, bad_steps[1])
        loss_sum, gnorm_sum = float(loss_sum), float(gnorm_sum)
        if self.dist.active:  # the epoch's loss over all ranks
            tot = torch.tensor([loss_sum, float(seen)], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(tot)
            loss_sum, seen = tot.tolist()
            seen = int(seen)
        dt = time.perf_counter() - t0
        row = {"stage": rs.name, "epoch": epoch + 1, "lr": lr, "loss": loss_sum / max(seen, 1),
               "grad_norm": gnorm_sum / steps, "images": seen, "seconds": round(dt, 3), "img_s": round(seen / max(dt, 1e-9), 1)}
        if self.scaler.is_enabled():
            row["loss_scale"] = self.scaler.get_scale()
        if hasattr(model.neck, "summary"):  # a learned neck's state (PIF's effective scale and offset)
            row.update({f"neck_{k}": round(v, 6) for k, v in model.neck.summary().items()})
        return row

    def _gradients(self, step_module, xb, yb, ib, extra, gen, aug, n: int) -> torch.Tensor:
        """Back-propagate one optimiser step's batch in ``n`` micro-batches (stage.accumulate),
        each loss weighted by its share of the batch, so the gradient is that of the batch's mean
        loss; under DDP only the last micro-batch all-reduces. Returns that loss, detached."""
        dev = self.device
        # n near-equal parts; fewer where the batch (an epoch's last) is too short for two
        # images a part, which BatchNorm needs
        b = len(yb)
        m = max(1, min(n, b // 2))
        ends = [b * (i + 1) // m for i in range(m)]
        parts = [slice(lo, hi) for lo, hi in zip([0] + ends[:-1], ends)]
        total = torch.zeros((), device=dev)
        for j, s in enumerate(parts):
            xs = xb[s]
            ex = {name: Batch(self._batch_input(xe[s], gen, aug), ye[s], to_device(ie[s], dev)) for name, (xe, ye, ie) in extra.items()}
            batch = Batch(self._batch_input(xs, gen, aug), yb[s], to_device(ib[s], dev), ex,
                          view=lambda xs=xs: self._batch_input(xs, gen, aug))
            check_batch_devices(batch, dev)
            quiet = j < len(parts) - 1 and hasattr(step_module, "no_sync")
            with step_module.no_sync() if quiet else contextlib.nullcontext():
                with self._autocast():
                    loss = step_module(batch)
                w = len(batch.y) / len(yb)
                self.scaler.scale(loss * w if len(parts) > 1 else loss).backward()
            total = total + loss.detach().float() * w
        return total

    def _step_module(self, model, method) -> nn.Module:
        """The training step as one module (wrapped in DistributedDataParallel on several
        ranks), made once a stage: a new DDP wrapper every epoch re-broadcasts the weights
        and rebuilds its gradient buckets."""
        if self._step is None or self._step[0] is not method:
            if self._features is not None:
                from longtail.engine.features import FeatureView

                model = FeatureView(model)
            self._step = (method, distributed.wrap_step(model, method, self.dist, self.device))
        return self._step[1]

    def _train_source(self) -> BatchSource:
        """Where an epoch's batches come from: the training images, or their cached features
        (a tensor like an in-memory image set, so the same seeded draws index it)."""
        if self._features is None:
            return self.source
        if getattr(self, "_feature_source", (None,))[0] is not self._features:
            feats, labels = self._features["train"]
            self._feature_source = (self._features, BatchSource(LabeledImages(feats, labels, self.num_classes), self.device, 0))
        return self._feature_source[1]

    def _rank_batch(self, cfg: StageConfig) -> int:
        """stage.batch_size is the global batch; each of W ranks takes batch_size / W."""
        if cfg.batch_size % self.dist.world:
            raise LongtailError(f"batch_size {cfg.batch_size} does not divide among {self.dist.world} processes",
                                f"use a multiple of {self.dist.world}")
        return cfg.batch_size // self.dist.world

    def _progress(self, total: int, desc: str, unit: str = "step"):
        """A bar in a terminal, a line every half minute in a log (:mod:`longtail.progress`)."""
        if not self.cfg.engine.progress or not self.dist.main:
            return None
        return progress(total, desc, unit)

    def _non_finite(self, what: str, value: float, rs: ResolvedStage, epoch: int, step: int):
        last = self.out / CHECKPOINT
        where = f"last good checkpoint: {last} (end of the previous epoch)" if last.exists() else "no checkpoint was written yet"
        raise LongtailError(
            f"{what} is {value} at stage '{rs.name}' ({rs.cfg.method}), epoch {epoch + 1}, step {step + 1}; run stopped",
            f"lower the learning rate or set engine.grad_clip; {where}, continue with --resume after fixing the config",
        )

    # ------------------------------------------------------------------------ checkpoints
    def _save(self, model, opt, method):
        if not self.dist.main:
            distributed.barrier(self.dist)
            return
        state = {
            "stage": self.state.stage, "epoch": self.state.epoch,
            "model": model.state_dict(),
            "optimizer": opt.state_dict() if opt is not None else None,
            "method": method.state_dict() if method is not None else {},
            "history": self.state.history, "stage_metrics": self.state.stage_metrics,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "precision": self.precision,
            "wall_s": self._wall_before + time.perf_counter() - self._t_run,  # the run's time so far, every process
        }
        t = time.monotonic()
        ckpt.save_checkpoint(state, self.out / CHECKPOINT)
        self._last_save = time.monotonic()
        self._save_seconds = self._last_save - t
        distributed.barrier(self.dist)

    def _checkpoint_due(self, done: int, epochs: int) -> bool:
        """engine.checkpoint_every / checkpoint_minutes, and the last epoch of a stage always;
        checkpoint_every's saves are skipped while the last save's time is above
        checkpoint_share of the time since it (short epochs are not all written)."""
        e = self.cfg.engine
        since = time.monotonic() - self._last_save
        by_epoch = bool(e.checkpoint_every and done % e.checkpoint_every == 0)
        if by_epoch and e.checkpoint_share and self._save_seconds > e.checkpoint_share * since:
            by_epoch = False
        due = done == epochs or by_epoch or (e.checkpoint_minutes and since >= 60 * e.checkpoint_minutes)
        if self.dist.active:  # every rank must enter the save's barrier together
            due = distributed.broadcast_object(bool(due), self.dist)
        return bool(due)

    def _write_history(self):
        if not self.dist.main:
            return
        rows = self.state.history
        if not rows:
            return
        keys = list(dict.fromkeys(k for r in rows for k in r))
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
        write_atomic(self.out / "history.csv", text.getvalue())

    # -------------------------------------------------------------------------------- run
    def run(self) -> dict:
        """Train every stage (from the checkpoint with ``resume``), write the outputs, return
        the final metrics. Rank 0 owns the folder: its lock, config.yaml and the check that a
        fresh run does not overwrite another; a refusal there stops every rank."""
        lock, problem = None, None
        if self.dist.main:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                lock = RunLock(self.out).acquire()
                if not self.resume and (self.out / CHECKPOINT).exists():
                    raise LongtailError(f"{self.out} already holds a run", "pass --resume to continue it, or --out for a new folder")
                if self.resume:
                    self._check_stored_config()
                (self.out / "config.yaml").write_text(dump_config(self.cfg))
                if self.splits.manifest is not None:  # the split made here, image by image
                    with open(self.out / "split.csv", "w", newline="") as f:
                        w = csv.writer(f)
                        w.writerow(["path", "class", "split"])
                        w.writerows(self.splits.manifest)
                if self.splits.skipped:  # data.skip_unreadable: what was left out, and why
                    write_atomic(self.out / "skipped_images.txt", "".join(f"{p}\t{why}\n" for p, why in self.splits.skipped))
            except LongtailError as e:
                problem = e
        problem = distributed.broadcast_object(problem, self.dist)
        try:
            if problem is not None:
                raise problem
            return self._run()
        finally:
            # the DDP wrapper of the last stage holds the process group: released with the run, so
            # that leaving the group (distributed.shutdown) does not outlive it
            self._step = None
            if lock is not None:
                lock.release()

    def _check_stored_config(self):
        """A resume continues the run that is there: a config that differs from the stored one
        (other than in how the engine runs it: device, threads, progress) is refused by name."""
        stored_file = self.out / "config.yaml"
        if not stored_file.exists():
            return
        import yaml

        from longtail.config import RUN_FREE_KEYS, flat_keys, from_dict, same_run, to_dict

        try:
            stored = from_dict(RunConfig, yaml.safe_load(stored_file.read_text()))
        except LongtailError as e:
            raise LongtailError(f"--resume: the stored {stored_file} no longer validates ({e})",
                                "resume with the longtail version that started the run, or start a new run") from None
        diff = same_run(stored, self.cfg, RUN_FREE_KEYS + ("engine.device", "engine.threads"))
        if diff:
            was, now = flat_keys(to_dict(stored)), flat_keys(to_dict(self.cfg))
            shown = ", ".join(f"{k} (stored {was.get(k)!r}, now {now.get(k)!r})" for k in diff[:5])
            raise LongtailError(f"--resume: the config differs from the one {self.out} was started with: {shown}"
                                + (f" and {len(diff) - 5} more" if len(diff) > 5 else ""),
                                f"resume with the stored config (longtail train --resume {self.out}), or start a new run with --out")

    def _run(self) -> dict:
        cfg = self.cfg
        model = self._build_model()
        loaded = None
        if self.resume:
            if (self.out / CHECKPOINT).exists() or ckpt.previous_path(self.out / CHECKPOINT).exists():
                loaded = ckpt.load_latest(self.out / CHECKPOINT, map_location=self.device, log=self.log)
                self.state = RunState(loaded["stage"], loaded["epoch"], loaded["history"], loaded["stage_metrics"])
                self._keep_started_precision(loaded.get("precision"))
                # earlier processes' time up to this checkpoint; a checkpoint written before it was
                # kept has only its epochs' training seconds (a lower bound: no evaluation, no set-up)
                self._wall_before = loaded.get("wall_s", sum(r.get("seconds", 0.0) for r in self.state.history))
                if self.state.stage >= len(self.stages):  # finished: only the outputs are (re)written
                    model.load_state_dict(loaded["model"])
                    self.log(f"{self.out}: every stage is done; rewriting its outputs")
                else:
                    self.log(f"resuming {self.out} in stage {self.state.stage + 1} after epoch {self.state.epoch} "
                             f"(continuing with epoch {self.state.epoch + 1})")
            else:
                self.log(f"--resume: no checkpoint in {self.out}, starting from scratch")
        elif cfg.start_stage:
            self.state = RunState(stage=cfg.start_stage, stage_metrics=self._inherited_metrics())
        self._t_run = time.perf_counter()
        board = None
        if self.cfg.engine.tensorboard and self.dist.main:
            from longtail.engine.tensorboard import Scalars

            board = Scalars(self.out / "tensorboard")
        try:
            return self._train_stages(model, loaded, board)
        finally:
            if board is not None:
                board.close()

    def _train_stages(self, model, loaded, board) -> dict:
        method = None
        for rs in self.stages:
            if rs.index < self.state.stage:
                continue
            mid_stage = loaded is not None and self.state.epoch > 0
            if loaded is not None and not mid_stage:
                model.load_state_dict(loaded["model"])  # a stage boundary: weights before set-up
            self._features = None
            if rs.cfg.cache_features:  # the backbone is the same before and after the stage: features first
                from longtail.engine import features

                if mid_stage:
                    model.load_state_dict(loaded["model"])
                self._features = features.load_or_compute(self, model)
            method, opt = self._setup_stage(model, rs)
            if mid_stage:
                model.load_state_dict(loaded["model"])
                if opt is not None and loaded["optimizer"] is not None:
                    opt.load_state_dict(loaded["optimizer"])
                method.load_state_dict(loaded["method"])
                if loaded.get("scaler"):
                    self.scaler.load_state_dict(loaded["scaler"])
            loaded = None
            self.log(f"== {rs.name}: {rs.cfg.method}, {rs.cfg.epochs} epochs, sampler {rs.sampler}, "
                     f"train {rs.train}{', new head' if rs.reinit_head else ''}")
            sch = rs.cfg.schedule
            if rs.cfg.epochs and sch.warmup_epochs >= rs.cfg.epochs and sch.name != "constant":
                self.log(f"warning: {rs.name} lasts {rs.cfg.epochs} epoch(s), no longer than its {sch.warmup_epochs:g} warm-up "
                         f"epoch(s): its learning rate never decays from the peak {rs.cfg.optimizer.scaled_lr(rs.cfg.batch_size):g} (lower "
                         f"stages.{rs.name}.schedule.warmup_epochs, or train it longer)")
            o = rs.cfg.optimizer
            if o.base_batch:
                self.log(f"note: {rs.name}: lr {o.scaled_lr(rs.cfg.batch_size):g} = {o.lr:g} x batch {rs.cfg.batch_size} / "
                         f"base_batch {o.base_batch} (optimizer.base_batch: the linear scaling rule)")
            if rs.cfg.accumulate > 1:
                micro = self._rank_batch(rs.cfg) // rs.cfg.accumulate
                coupled = f"; {method.batch_coupled}" if method.batch_coupled else ""
                self.log(f"note: {rs.name}: {rs.cfg.accumulate} micro-batches of {micro} images a step (stage.accumulate): "
                         f"BatchNorm statistics come from {micro} images{coupled}")
            for epoch in range(self.state.epoch, rs.cfg.epochs):
                row = self._train_epoch(model, method, opt, rs, epoch)
                if rs.cfg.eval_every and (epoch + 1) % rs.cfg.eval_every == 0 and epoch + 1 < rs.cfg.epochs:
                    m = self.evaluate(model, method)
                    row.update(test_acc=round(m["overall"], 2))
                self.state.history.append(row)
                if board is not None:
                    board.epoch(row, len(self.state.history))
                self.state.epoch = epoch + 1
                if self._checkpoint_due(epoch + 1, rs.cfg.epochs):
                    self._save(model, opt, method)
                self._write_history()
                self.log("  " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "stage"))
            method.finish()
            m = self.evaluate(model, method)
            entry = {"stage": rs.name, "method": rs.cfg.method, "metrics": m}
            if method.chosen():
                entry["chosen"] = method.chosen()
            if self.splits.val is not None:
                entry["val"] = {k: v for k, v in self.evaluate(model, method, "val").items() if k != "confusion_matrix"}
            self.state.stage_metrics.append(entry)
            self._features = None
            if board is not None:
                board.stage(rs.name, m, len(self.state.history))
            self.log(f"  {rs.name} test: {headline_line(m)}")
            self.state.stage, self.state.epoch = rs.index + 1, 0
            self._save(model, None, None)
        final = self.state.stage_metrics[-1]["metrics"]
        self._write_outputs(model, final)
        return final

    def _inherited_metrics(self) -> list[dict]:
        """Per-stage results of the skipped stages, from the init run's checkpoint."""
        init = Path(self.cfg.model.init)
        folder = init if init.is_dir() else init.parent
        if (folder / CHECKPOINT).exists():
            return ckpt.load_latest(folder / CHECKPOINT, log=self.log)["stage_metrics"][: self.cfg.start_stage]
        if (folder / "metrics.json").exists():  # a run kept without its checkpoint (bench keep_bases)
            stages = json.loads((folder / "metrics.json").read_text()).get("stages", [])
            keep = ("stage", "method", "val", "chosen")
            return [{**{k: e[k] for k in keep if k in e}, "metrics": {k: v for k, v in e.items() if k not in keep}}
                    for e in stages[: self.cfg.start_stage]]
        return []

    def _write_outputs(self, model, final: dict):
        if not self.dist.main:
            return
        wall_s = time.perf_counter() - self._t_run
        weights = io.BytesIO()
        torch.save(model.state_dict(), weights)
        write_atomic(self.out / "model.pt", weights.getvalue())
        out = {k: v for k, v in final.items() if k != "confusion_matrix"}
        out["headline"] = dict(zip(("metric", "value"), headline(final)))  # balanced where the test set is imbalanced
        # per_class is in class-index order; the same by class name, for a reader without the index
        out["per_class_by_name"] = dict(zip(self.train_set.class_names, final["per_class"]))
        out["stages"] = [{"stage": e["stage"], "method": e["method"],
                          **{k: v for k, v in e["metrics"].items() if k != "confusion_matrix"},
                          **{k: e[k] for k in ("val", "chosen") if k in e}} for e in self.state.stage_metrics]
        out["confusion_matrix"] = final["confusion_matrix"]
        out["run"] = {"name": self.cfg.name, "seed": self.cfg.seed, "wall_s": round(self._wall_before + wall_s, 1),
                      "wall_s_this_process": round(wall_s, 1),
                      "train_images": len(self.train_set), "machine": machine_description(self.device),
                      "precision": self.precision, "compile": self.cfg.engine.compile, "cuda_graphs": self.graphs,
                      # what a loaded model needs to read new images as this run did (longtail.load)
                      "input": {"class_names": list(self.train_set.class_names), "channels": self.train_set.channels,
                                "size": self.train_set.image_size, "resize": int(self.train_set.images.shape[-1]),
                                "mean": list(self.mean), "std": list(self.std)},
                      "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
        write_atomic(self.out / "metrics.json", json.dumps(out, indent=1))
        self._write_history()
        if self.cfg.eval.plots:
            from longtail.evaluation.report import write_run_plots

            write_run_plots(self.out, self.state.stage_metrics, self.train_set.class_names, self.class_counts.long().tolist(),
                            self.cfg.eval.ece_bins)
