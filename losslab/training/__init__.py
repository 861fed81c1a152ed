"""The inner-loop trainer, its configuration, hooks, metrics and results."""

from __future__ import annotations

from losslab.training.config import TrainConfig, resolve_device
from losslab.training.hooks import Hook, StopTraining
from losslab.training.metrics import METRICS, confusion_matrix, hd95_per_class, overlap_metrics
from losslab.training.result import EpochRecord, Result
from losslab.training.trainer import Trainer, TrainState, train

__all__ = [
    "METRICS",
    "EpochRecord",
    "Hook",
    "Result",
    "StopTraining",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "confusion_matrix",
    "hd95_per_class",
    "overlap_metrics",
    "resolve_device",
    "train",
]
