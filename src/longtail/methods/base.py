"""The Method interface: what a method adds to a stage. The engine calls these hooks and never
asks which method it runs.

A training step, as the engine runs it (``Method.training_step``'s default)::

    fmap   = model.features(x)            # no_grad when the backbone is frozen
    fmap   = method.transform_features(fmap, batch)   # training-time hooks (H2TF, PIF)
    emb    = model.pool(fmap)
    logits = model.head(emb)
    loss   = method.loss(logits, batch)

and at evaluation ``method.adjust_logits(model(x))`` (post-hoc corrections). Methods with
hyper-parameters declare them in ``params`` (name -> default); ``method_args`` in the stage
config may set only those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from longtail.errors import LongtailError
from longtail.losses.precision import fp32


@dataclass
class Batch:
    x: torch.Tensor  # augmented, normalised images
    y: torch.Tensor
    index: torch.Tensor  # positions in the training set (on the model's device, like x and y)
    extra: dict[str, "Batch"] = field(default_factory=dict)  # batches from extra samplers
    # another independently augmented view of the same images (two-view methods, e.g. BNS)
    view: Callable[[], torch.Tensor] | None = None


def check_batch_devices(batch: Batch, device: torch.device) -> None:
    """Every tensor of a step's batch (and of its extra batches) on the model's device: a
    CPU index meeting a CUDA permutation fails only on a GPU, so the engine checks each step
    on every device (a comparison of device objects, no synchronisation)."""
    from longtail.engine.runtime import same_device

    for name, t in (("x", batch.x), ("y", batch.y), ("index", batch.index)):
        if not same_device(t.device, device):
            raise RuntimeError(f"batch.{name} is on {t.device}, the model on {device}: the engine must move every "
                               "batch tensor to the model's device")
    for extra in batch.extra.values():
        check_batch_devices(extra, device)


@dataclass
class StageContext:
    """What a method may know about the stage it runs in."""

    class_counts: torch.Tensor  # training images per class (float)
    num_classes: int
    epochs: int
    steps_per_epoch: int
    device: torch.device
    model: nn.Module
    frozen_backbone: bool = False
    # embeddings (pooled features) and labels of a split ("train", "val"), computed on demand
    embed: Callable[[str], tuple[torch.Tensor, torch.Tensor]] | None = None
    has_val: bool = False
    log: Callable[[str], None] = print
    seed: int = 0  # the run's seed (methods derive their own random streams from it)
    stage_index: int = 0
    train_labels: torch.Tensor | None = None  # the label of every training image, in order
    # multi-process runs: concatenate a tensor over ranks keeping gradients (BNS negatives),
    # and rank 0's object on every rank (the IP-DPP subset); identities in one process
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    broadcast: Callable[[Any], Any] = lambda o: o


class Method:
    """Plain cross-entropy; subclasses override what they change."""

    id = "ce"
    params: dict[str, Any] = {}
    # defaults for the stage keys left empty in the config
    stage_defaults: dict[str, Any] = {"sampler": "instance", "train": "all", "reinit_head": False}
    # extra batches the training step needs: name -> sampler (H2TF's head batch)
    extra_samplers: dict[str, str] = {}
    # what, beyond BatchNorm, the loss takes from the other images of its batch (""), so that
    # gradient accumulation (stage.accumulate) can say what a micro-batch changes
    batch_coupled: str = ""
    # non-empty: why the method needs one classifier head, so that a multi-expert model (RIDE's
    # heads) is refused before any training instead of failing when the stage starts
    one_head: str = ""

    def __init__(self, ctx: StageContext, **args):
        unknown = set(args) - set(self.params)
        if unknown:
            raise LongtailError(
                f"method '{self.id}' has no parameter(s) {sorted(unknown)}",
                f"its method_args are {sorted(self.params) or 'none'}",
            )
        self.ctx = ctx
        self.args = {**self.params, **args}
        # the outermost plug-in around this method: its hooks are the ones a step must call
        self.outer: Method = self

    # -- lifecycle -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Called once at the start of the stage, after the head is (re)built."""

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch (DRW switches weights on; IP-DPP redraws its subset)."""

    def sample_pool(self) -> torch.Tensor | None:
        """Training-set indices the epoch may draw from (None: all)."""
        return None

    def finish(self) -> None:
        """Called at the end of the stage (post-hoc head surgery)."""

    def modules(self) -> list[nn.Module]:
        """Modules with trainable parameters the method owns (e.g. a projection head)."""
        return []

    def lr_scales(self) -> list[tuple[list[nn.Parameter], float]]:
        """Parameters whose learning rate is the stage's times a factor (MiSLAS trains its
        classifier at ``lr_factor`` × lr beside the scales at lr); the rest take the stage's."""
        return []

    # -- the step --------------------------------------------------------------------------
    def transform_features(self, fmap: torch.Tensor, batch: Batch) -> torch.Tensor:
        return fmap

    def training_step(self, model, batch: Batch) -> torch.Tensor:
        if self.ctx.frozen_backbone:
            with torch.no_grad():
                fmap = model.features(batch.x)
        else:
            fmap = model.features(batch.x)
        fmap = self.outer.transform_features(fmap, batch)
        logits = self.head_logits(model, model.pool(fmap))
        return self.outer.loss(logits, batch)

    def head_logits(self, model, emb: torch.Tensor) -> torch.Tensor:
        """The logits the loss sees (the head's output; RIDE: every expert's)."""
        return model.head(emb)

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return _cross_entropy(logits, batch.y)

    def adjust_logits(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def chosen(self) -> dict:
        """Parameters the method chose itself during the stage (τ-norm's τ on the validation
        images), as ``method_args`` that repeat the choice: kept in metrics.json's stage entry,
        so that the same stage can be trained again without the data it chose on."""
        return {}

    # -- resume ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@fp32
def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.id] = cls
    return cls


def method_class(method_id: str) -> type[Method]:
    """The class of a method id: a registered one, or ``module:Class`` from the user's own code
    (any importable module; the class subclasses :class:`Method`, or :class:`Plugin`)."""
    if ":" in method_id:
        return _import_method(method_id)
    if method_id not in METHODS:
        import difflib

        close = difflib.get_close_matches(method_id, list(METHODS), n=1)
        raise LongtailError(f"unknown method '{method_id}'", (f"did you mean '{close[0]}'? " if close else "")
                            + f"stage.method must be one of {sorted(METHODS)} (plug-ins join with '+', e.g. ce+mixup)")
    return METHODS[method_id]


def _import_method(spec: str) -> type[Method]:
    import importlib

    module, _, name = spec.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise LongtailError(f"method '{spec}': cannot import module '{module}' ({e})",
                            "put the module on PYTHONPATH (or install its package), or fix the name before ':'") from None
    cls = getattr(mod, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise LongtailError(f"method '{spec}': {module} has no Method subclass '{name}'",
                            "subclass longtail.methods.Method (or Plugin) and name it after the ':'")
    if "id" not in cls.__dict__:
        cls.id = spec  # messages name the method as the config does
    return cls


def check_method_spec(spec: str, method_args: dict, where: str) -> None:
    """``spec`` ('ce+h2tf') and its ``method_args`` name known methods and parameters: checked
    when a config is read, before any data is loaded or a run folder is made."""
    base, args, plugins = split_method(spec, method_args)
    for pid, pargs in [(base, args)] + plugins:
        cls = method_class(pid)
        if pid != base and not issubclass(cls, Plugin):
            raise LongtailError(f"{where}: '{pid}' in '{spec}' is not a plug-in", "join only plug-ins (mixup, pif, h2tf, pih2t) to a base method with '+'")
        if pid == base and issubclass(cls, Plugin):
            raise LongtailError(f"{where}: '{pid}' is a plug-in, not a base method", f"put it after a base method, e.g. ce+{pid}")
        if not isinstance(pargs, dict):
            raise LongtailError(f"{where}: method_args.{pid} must be a mapping", f"write method_args: {{{pid}: {{...}}}}")
        unknown = sorted(set(pargs) - set(cls.params))
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], list(cls.params), n=1)
            raise LongtailError(f"{where}: method '{pid}' has no parameter(s) {unknown}",
                                (f"did you mean '{close[0]}'? " if close else "") + f"its method_args are {sorted(cls.params) or 'none'}")


def split_method(spec: str, method_args: dict) -> tuple[str, dict, list[tuple[str, dict]]]:
    """``'ce+h2tf'`` with ``{'gamma': 1, 'h2tf': {'ratio': .25}}`` -> the base id and its
    arguments, and each plug-in id with its own sub-mapping of ``method_args``."""
    base, *plugins = spec.split("+")
    args = dict(method_args)
    return base, args, [(p, args.pop(p, {})) for p in plugins]


def make_method(method_id: str, ctx: StageContext, args: dict | None = None) -> Method:
    return method_class(method_id)(ctx, **(args or {}))


register(Method)


class Plugin(Method):
    """A method that wraps another (``ce+h2tf``: H2TF around CE). Every hook goes to the base
    method unless the plug-in overrides it; ``transform_features`` runs the base's first."""

    def __init__(self, ctx: StageContext, base: Method, **args):
        super().__init__(ctx, **args)
        self.base = base
        self.extra_samplers = {**base.extra_samplers, **type(self).extra_samplers}
        self.batch_coupled = "; ".join(c for c in (base.batch_coupled, type(self).batch_coupled) if c)
        self.claim(base)

    def claim(self, method: Method) -> None:
        """Make this plug-in the ``outer`` of ``method`` and of everything it wraps, so a base
        method's own ``training_step`` (BNS's two views) calls the plug-ins' hooks."""
        while True:
            method.outer = self
            if not isinstance(method, Plugin):
                return
            method = method.base

    def training_step(self, model, batch):
        return self.base.training_step(model, batch)

    def prepare(self):
        self.base.prepare()

    def on_epoch_start(self, epoch):
        self.base.on_epoch_start(epoch)

    def sample_pool(self):
        return self.base.sample_pool()

    def finish(self):
        self.base.finish()

    def modules(self):
        return self.base.modules()

    def lr_scales(self):
        return self.base.lr_scales()

    def transform_features(self, fmap, batch):
        return self.base.transform_features(fmap, batch)

    def loss(self, logits, batch):
        return self.base.loss(logits, batch)

    def adjust_logits(self, logits):
        return self.base.adjust_logits(logits)

    def chosen(self):
        return self.base.chosen()

    def state_dict(self):
        return {"base": self.base.state_dict()}

    def load_state_dict(self, state):
        self.base.load_state_dict(state.get("base", {}))
