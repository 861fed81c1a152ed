"""``Result``: what one evaluation returns, whether it succeeded, failed or was pruned."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from losslab.classwise import foreground_mean as _foreground_mean

__all__ = ["EpochRecord", "Result"]


@dataclass
class EpochRecord:
    """One epoch: mean training loss, per-class validation Dice (NaN: class absent from the
    validation split or not validated this epoch), and the weights in force during the epoch."""

    epoch: int
    train_loss: float
    val_dice: list[float]
    class_weights: list[float]
    term_weights: list[float]
    wall_time: float


@dataclass
class Result:
    """The outcome of training one candidate at one fidelity and seed.

    Attributes:
        status: ``ok``, ``failed``, ``pruned`` or ``interrupted``.
        reason: why it failed or was pruned (empty when ok).
        failed_step: the global step at which a non-finite value was first seen, if any.
        class_names: index = label value, ``[0]`` the background.
        history: one record per completed epoch.
        test_metrics: metric -> per-class values on the test split (NaN: class absent).
        wall_time: seconds.
        series: per-step curves a hook adds (a greedy controller's parameter trajectory):
            name -> ``[[step, value], ...]``, logged as MLflow metrics at those steps.
        artifacts: text files a hook adds (file name -> content), logged as MLflow artifacts.
        tags: short facts a hook adds (``greedy.mode``), logged as MLflow tags.
        test_cases: metric -> one ``[C]`` list per test case (NaN: class absent from the case),
            the values ``test_metrics`` averages; ``test_case_ids`` names the cases. Also
            ``predicted_voxels``: the voxels predicted as each class in each case (a class
            never predicted has no HD95; the mean counts it as the volume's diagonal).
        logit_hist: class name -> ``{"edges": [E+1], "foreground": [E], "background": [E]}``,
            histograms over the test split of the class's logit margin (its logit minus the
            largest other logit; > 0 where the class is predicted) at the voxels of the class
            (foreground) and at all other voxels (background); foreground classes only.
    """

    status: str
    class_names: list[str]
    reason: str = ""
    failed_step: int | None = None
    history: list[EpochRecord] = field(default_factory=list)
    test_metrics: dict[str, list[float]] = field(default_factory=dict)
    wall_time: float = 0.0
    steps: int = 0
    device: str = "cpu"
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    test_cases: dict[str, list[list[float]]] = field(default_factory=dict)
    test_case_ids: list[str] = field(default_factory=list)
    logit_hist: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def foreground_mean(self, metric: str = "dice") -> float:
        """Mean of a test metric over foreground classes present in the test split (NaN if none)."""
        return _foreground_mean(self.test_metrics.get(metric, []))

    def last_val_dice(self) -> list[float]:
        for record in reversed(self.history):
            if any(not math.isnan(v) for v in record.val_dice):
                return record.val_dice
        return [math.nan] * len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        data = dict(data)
        data["history"] = [EpochRecord(**r) for r in data.get("history", [])]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
