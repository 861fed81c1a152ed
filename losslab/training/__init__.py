"""The inner-loop trainer, its configuration, hooks, metrics and results.

The names below are imported on first use (``losslab._lazy``).
"""

from __future__ import annotations

from losslab._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "losslab.training.config",
    "resolve_device": "losslab.training.config",
    "Hook": "losslab.training.hooks",
    "StopTraining": "losslab.training.hooks",
    "METRICS": "losslab.training.metrics",
    "confusion_matrix": "losslab.training.metrics",
    "hd95_per_class": "losslab.training.metrics",
    "overlap_metrics": "losslab.training.metrics",
    "EpochRecord": "losslab.training.result",
    "Result": "losslab.training.result",
    "Trainer": "losslab.training.trainer",
    "PopulationTrainer": "losslab.training.population",
    "population_safe": "losslab.training.population",
    "StackedNetwork": "losslab.training.stacked",
    "TrainState": "losslab.training.state",
    "Snapshot": "losslab.training.state",
    "train": "losslab.training.trainer",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "METRICS",
    "EpochRecord",
    "Hook",
    "PopulationTrainer",
    "Result",
    "Snapshot",
    "StackedNetwork",
    "StopTraining",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "confusion_matrix",
    "hd95_per_class",
    "overlap_metrics",
    "population_safe",
    "resolve_device",
    "train",
]
