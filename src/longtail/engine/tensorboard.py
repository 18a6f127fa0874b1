"""``engine.tensorboard: true``: a run's curves in TensorBoard.

Every epoch row of ``history.csv`` (loss, learning rate, gradient norm, images/s, the test
accuracy of ``eval_every``) and every stage's test results (overall, balanced, many / medium /
few, head / tail, ECE) become scalars in ``RUN/tensorboard/``, named ``<stage>/<key>``. The step
is the number of epochs trained so far over all stages, so the stages follow each other on one
axis; a resumed run appends to the same folder. ``tensorboard --logdir RUN/tensorboard``.
Needs ``pip install 'longtail[tensorboard]'``.
"""

from __future__ import annotations

from pathlib import Path

from longtail.errors import LongtailError

STAGE_KEYS = ("overall", "balanced", "many", "medium", "few", "head", "tail", "ece")


def check_available() -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise LongtailError("engine.tensorboard needs the tensorboard package",
                            "pip install 'longtail[tensorboard]', or set engine.tensorboard: false") from None


class Scalars:
    def __init__(self, folder: Path):
        check_available()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder))

    def epoch(self, row: dict, step: int) -> None:
        for k, v in row.items():
            if k not in ("stage", "epoch") and isinstance(v, (int, float)):
                self.writer.add_scalar(f"{row['stage']}/{k}", v, step)
        self.writer.flush()

    def stage(self, name: str, metrics: dict, step: int) -> None:
        for k in STAGE_KEYS:
            if metrics.get(k) is not None:
                self.writer.add_scalar(f"{name}/test_{k}", metrics[k], step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
