"""The Python API: train a run, load a finished one, predict, export.

    import longtail
    run = longtail.train("configs/demo.yaml", overrides=["stages.0.epochs=1"], out="runs/try")
    model = longtail.load(run.folder)
    model.predict(["shoe.png"], top_k=3)   # [{'path': 'shoe.png', 'class': 'Sneaker', 'prob': 0.91, 'top': [...]}]

A loaded model applies the run's evaluation preprocessing (decode at the run's input size and
channels, normalise with its statistics) and any post-hoc correction its last stage trained
(logit adjustment, LDAM's scale; τ-norm and LWS are already folded into the weights), so its
probabilities are those behind the run's reported metrics. A run trained with the authors' PIF
(``pif: {form: equivariant}``) has the layer folded into a linear head (``folded`` is true): the
model predicts and exports as the base architecture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from longtail.data.augment import center_crop
from longtail.errors import LongtailError


@dataclass
class Run:
    folder: Path
    metrics: dict

    @property
    def config(self):
        from longtail.config import load_config

        return load_config(self.folder / "config.yaml")


def train(config, overrides: list[str] | None = None, out: str | Path | None = None, resume: bool = False) -> Run:
    """Train the run ``config`` (a YAML path or a :class:`~longtail.config.RunConfig`) into ``out``."""
    import time

    from longtail.config import RunConfig, load_config
    from longtail.engine.cost import announce
    from longtail.engine.trainer import Trainer

    try:
        cfg = config if isinstance(config, RunConfig) else load_config(config, overrides or [])
        folder = Path(out) if out else Path("runs") / cfg.name / time.strftime("%Y%m%d-%H%M%S")
        trainer = Trainer(cfg, folder, resume=resume)
        # what `longtail train` says before it starts: the time estimate and a crowded CPU
        announce(trainer, lambda msg: print(msg, flush=True), timed=not resume)
        trainer.run()
    except LongtailError as e:
        raise in_api_words(e) from None
    return Run(folder, json.loads((folder / "metrics.json").read_text()))


# the command line's words in an error, and this API's for the same thing
API_WORDS = [("longtail train --resume ", "longtail.train(CONFIG, resume=True, out="), ("--resume", "resume=True"),
             ("--out", "out="), ("--set ", "overrides=[...]: ")]


def in_api_words(e: LongtailError) -> LongtailError:
    """``e`` with the command line's flags named as :func:`train`'s arguments."""
    def say(text):
        for cli, api in API_WORDS:
            text = text.replace(cli, api) if text else text
        return text

    return LongtailError(say(e.problem), say(e.fix))


class DeployModel(nn.Module):
    """The run's network as one module: images in [0, 1] (N x C x H x W float) -> normalise ->
    backbone -> pool -> head -> the post-hoc correction ``a ⊙ z + b``: its logits equal the
    run's evaluation logits. What ``export`` writes."""

    def __init__(self, net: nn.Module, mean, std, scale: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("scale", scale.float())
        self.register_buffer("bias", bias.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std) * self.scale + self.bias


class LoadedModel:
    """A finished run's model, ready to predict (see the module docstring)."""

    def __init__(self, run_dir: str | Path, device: str = "cpu"):
        from longtail.config import load_config
        from longtail.engine.trainer import load_weights
        from longtail.models import build_model

        run = Path(run_dir).expanduser()
        for f in ("config.yaml", "model.pt", "metrics.json"):
            if not (run / f).is_file():
                raise LongtailError(f"{run} has no {f}", "pass a finished run folder (made by `longtail train`)")
        self.run = run
        self.cfg = load_config(run / "config.yaml")
        metrics = json.loads((run / "metrics.json").read_text())
        inp = metrics["run"].get("input")
        if inp is None:
            raise LongtailError(f"{run}/metrics.json records no input format (a run made before longtail 0.1.0's predict)",
                                f"re-write its outputs: longtail train --resume {run}")
        self.class_names = inp["class_names"]
        self.channels, self.size, self.resize = inp["channels"], inp["size"], inp.get("resize", inp["size"])
        self.device = torch.device(device)
        net = build_model(self.cfg.model.arch, len(self.class_names), self.channels, self.cfg.model.head)
        net.load_state_dict(load_weights(run))
        # a run trained with the authors' PIF holds its layer; where it folds into the head the
        # deployed model is the base architecture (no inference cost), else it stays in
        self.folded = net.neck is not None and net.foldable()
        net = net.folded()
        scale, bias = _posthoc_affine(self.cfg, metrics["class_counts"], len(self.class_names))
        self.model = DeployModel(net, inp["mean"], inp["std"], scale, bias).to(self.device).eval()

    def _images(self, images, skip_unreadable: bool = False) -> tuple[torch.Tensor, list[str], list[tuple[str, str]]]:
        """Paths (files or folders of images), or a uint8 / [0, 1] float tensor N x C x H x W, as
        (images, names, unreadable). Every file is opened first: unreadable ones are named all at
        once (an error), or, with ``skip_unreadable``, left out and returned as (path, why)."""
        if isinstance(images, torch.Tensor):
            x = images.float() / 255.0 if not images.is_floating_point() else images.float()
            return x, [str(i) for i in range(len(x))], []
        from longtail.data.datasets import scan_images
        from longtail.data.formats import IMAGE_SUFFIXES
        from longtail.data.images import FileImages

        paths = []
        for p in [images] if isinstance(images, (str, Path)) else images:
            p = Path(p).expanduser()
            if p.is_dir():
                paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and q.is_file())
            elif p.is_file():
                paths.append(p)
            else:
                raise LongtailError(f"no such image or folder: {p}", "pass image files or folders of images")
        if not paths:
            raise LongtailError("no images to predict", f"image types: {sorted(IMAGE_SUFFIXES)}")
        bad = scan_images(paths)
        if bad and not skip_unreadable:
            shown = "; ".join(f"{p} ({why})" for p, why in bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
            raise LongtailError(f"{len(bad)} of {len(paths)} images cannot be read: {shown}",
                                "remove or re-save them, or skip them: longtail predict --skip-unreadable (a row each, "
                                "saying why), predict(..., skip_unreadable=True) in Python")
        dropped = {p for p, _ in bad}
        paths = [p for p in paths if str(p) not in dropped]
        if not paths:
            raise LongtailError(f"none of the {len(bad)} images can be read", "pass readable image files")
        files = FileImages(paths, self.resize, self.channels)
        return files, [str(p) for p in paths], bad

    def logits(self, images, batch_size: int = 256, progress: bool = False, skip_unreadable: bool = False) -> torch.Tensor:
        """The run's evaluation logits of ``images`` (unreadable files left out with ``skip_unreadable``)."""
        return self._logits(self._images(images, skip_unreadable)[0], batch_size, progress)

    @torch.no_grad()
    def _logits(self, data, batch_size: int, progress: bool) -> torch.Tensor:
        out = []
        from longtail.progress import progress as bar_for

        bar = bar_for(len(data), "predict", "img") if progress else None
        for i in range(0, len(data), batch_size):
            part = data[i:i + batch_size] if isinstance(data, torch.Tensor) else \
                center_crop(torch.stack([data[j] for j in range(i, min(i + batch_size, len(data)))]), self.size).float() / 255.0
            if bar is not None:
                bar.update(len(part))
            out.append(self.model(part.to(self.device)).cpu())
        if bar is not None:
            bar.close()
        return torch.cat(out)

    def predict(self, images, top_k: int = 1, progress: bool = False, skip_unreadable: bool = False) -> list[dict]:
        """One dict per image: path, the predicted class name, its probability and the top k;
        with ``skip_unreadable``, an unreadable file's dict has its ``error`` instead (and class None)."""
        data, names, bad = self._images(images, skip_unreadable)
        probs = torch.softmax(self._logits(data, 256, progress), 1)
        k = min(top_k, probs.shape[1])
        p, idx = probs.topk(k, 1)
        rows = [{"path": n, "class": self.class_names[int(i[0])], "prob": float(q[0]),
                 "top": [(self.class_names[int(c)], float(v)) for c, v in zip(i, q)]} for n, q, i in zip(names, p, idx)]
        return rows + [{"path": path, "class": None, "prob": None, "top": [], "error": why} for path, why in bad]

    def preprocessing(self) -> str:
        """What a caller of an exported model does to an image first (normalisation is inside)."""
        resize = f"resize the shorter side to {self.resize} px, " if self.resize != self.size else "resize the shorter side to " \
                 f"{self.size} px, "
        grey = "grey (1 channel)" if self.channels == 1 else "RGB (3 channels)"
        return f"{resize}bilinear, centre-crop {self.size} x {self.size}, {grey}, float in [0, 1], N x C x H x W"

    def export(self, out_dir: str | Path, fmt: str = "torchscript") -> Path:
        """A standalone model (input: N x C x H x W float in [0, 1]) and ``classes.json``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        example = torch.rand(2, self.channels, self.size, self.size, device=self.device)
        (out / "classes.json").write_text(json.dumps({"classes": self.class_names, "input": [self.channels, self.size, self.size],
                                                      "range": "float in [0, 1], N x C x H x W",
                                                      "preprocess": self.preprocessing(),
                                                      # the filter changes the pixels: another one (Pillow's
                                                      # default bicubic) moves probabilities by up to 0.04
                                                      "resize_filter": "bilinear (Pillow Image.BILINEAR)"}, indent=1) + "\n")
        if fmt == "torchscript":
            path = out / "model.torchscript.pt"
            torch.jit.trace(self.model, example).save(str(path))
        elif fmt == "pt2":
            # torch.export, PyTorch's successor to TorchScript: load with
            # torch.export.load(path).module(); the batch dimension stays free
            path = out / "model.pt2"
            batch = torch.export.Dim("batch", min=1)
            torch.export.save(torch.export.export(self.model, (example,), dynamic_shapes=({0: batch},)), str(path))
        elif fmt == "onnx":
            try:
                import onnx  # noqa: F401
                import onnxscript  # noqa: F401  (torch.onnx.export's exporter)
            except ImportError as e:
                raise LongtailError(f"export --format onnx needs the {e.name} package", "pip install 'longtail[onnx]'") from None
            path = out / "model.onnx"
            # the exporter's own warnings and progress lines (deprecations, its translation steps) say
            # nothing a user can act on; a failure still raises
            import contextlib
            import io
            import logging
            import warnings

            quiet = logging.getLogger("torch.onnx")  # its registry's "torchvision is not installed" lines
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    warnings.simplefilter("ignore")
                    torch.onnx.export(self.model, (example,), str(path), input_names=["images"], output_names=["logits"],
                                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
            finally:
                quiet.setLevel(level)
        else:
            raise LongtailError(f"unknown export format '{fmt}'", "use torchscript, pt2 or onnx")
        return path


def load(run_dir: str | Path, device: str = "cpu") -> LoadedModel:
    """A finished run's model with ``.predict(images)``, ``.class_names`` and ``.export(dir)``."""
    return LoadedModel(run_dir, device)


def _posthoc_affine(cfg, class_counts, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The last stage's ``adjust_logits`` as ``a ⊙ z + b`` (every correction here is affine:
    logit adjustment adds −τ log π, LDAM multiplies by s), checked on random logits."""
    from longtail.methods import StageContext, make_method, split_method

    last = cfg.stages[-1]
    base, args, _ = split_method(last.method, last.method_args)
    ctx = StageContext(torch.tensor(class_counts, dtype=torch.float32), num_classes, 0, 1, torch.device("cpu"), nn.Identity())
    method = make_method(base, ctx, args)
    zero, one = torch.zeros(1, num_classes), torch.ones(1, num_classes)
    b = method.adjust_logits(zero)[0]
    a = method.adjust_logits(one)[0] - b
    z = torch.randn(4, num_classes)
    if not torch.allclose(method.adjust_logits(z), z * a + b, atol=1e-5):
        raise LongtailError(f"method '{base}' has a post-hoc correction that is not affine", "predict with `longtail eval` instead")
    return a, b
