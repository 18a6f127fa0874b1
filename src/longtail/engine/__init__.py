"""Engine: stages, the training loop, checkpoints, run-time set-up."""

from longtail.engine.trainer import Trainer

__all__ = ["Trainer"]
