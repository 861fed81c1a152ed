"""``Objective``: the single number a study maximises, computed from per-class Dice.

The search optimises validation Dice (the last validated epoch); the test split is held out for
the final comparison. Background is never scored, and a class absent from the split (``NaN``)
is left out. Kinds:

- ``mean``: mean foreground Dice;
- ``worst_k``: mean of the ``k`` lowest foreground Dice (the small organs an average hides);
- ``min``: the lowest foreground Dice;
- ``mix``: ``sum_kind weight * value(kind)`` over ``weights``, e.g. ``{mean: 0.5, worst_k: 0.5}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from losslab.classwise import foreground_values
from losslab.training import EpochRecord, Result
from losslab.typed import from_mapping

__all__ = ["OBJECTIVE_KINDS", "Objective"]

OBJECTIVE_KINDS = ("mean", "worst_k", "min", "mix")
_BASE_KINDS = ("mean", "worst_k", "min")


@dataclass(frozen=True)
class Objective:
    """What a study maximises (see the module docstring for the kinds)."""

    kind: str = "mean"
    k: int = 3
    weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in OBJECTIVE_KINDS:
            raise ValueError(
                f"objective kind {self.kind!r} is not one of {', '.join(OBJECTIVE_KINDS)}"
            )
        if type(self.k) is not int or self.k < 1:
            raise ValueError(f"objective k={self.k!r} must be a positive integer")
        if self.kind == "mix":
            if not self.weights:
                raise ValueError("objective kind 'mix' needs weights, e.g. {mean: 0.5, min: 0.5}")
            for name, weight in self.weights.items():
                if name not in _BASE_KINDS:
                    raise ValueError(
                        f"objective weight {name!r} is not one of {', '.join(_BASE_KINDS)}"
                    )
                if isinstance(weight, bool) or not isinstance(weight, int | float):
                    raise ValueError(f"objective weight {name}={weight!r} must be a number")
        elif self.weights:
            raise ValueError(f"objective weights are only for kind 'mix', not {self.kind!r}")
        object.__setattr__(self, "weights", {k: float(v) for k, v in self.weights.items()})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Objective:
        return from_mapping(cls, data, "objective")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "k": self.k, "weights": dict(self.weights)}

    def describe(self) -> str:
        if self.kind == "worst_k":
            return f"mean of the {self.k} worst classes' Dice"
        if self.kind == "mix":
            return " + ".join(f"{w:g} x {self._label(n)}" for n, w in self.weights.items())
        return self._label(self.kind)

    def _label(self, kind: str) -> str:
        return {"mean": "mean Dice", "min": "min class Dice"}.get(kind, f"worst-{self.k} Dice")

    def __call__(self, class_dice: Sequence[float]) -> float:
        """The objective of per-class Dice (index 0 = background, ignored); NaN if none scored."""
        scores = sorted(foreground_values(class_dice))
        if not scores:
            return math.nan
        if self.kind == "mix":
            return sum(w * self._base(n, scores) for n, w in self.weights.items())
        return self._base(self.kind, scores)

    def _base(self, kind: str, scores: list[float]) -> float:
        if kind == "mean":
            return sum(scores) / len(scores)
        if kind == "min":
            return scores[0]
        worst = scores[: self.k]
        return sum(worst) / len(worst)

    def of_epoch(self, record: EpochRecord) -> float:
        """The objective of one epoch's validation Dice (NaN if it was not validated)."""
        return self(record.val_dice)

    def of_result(self, result: Result) -> float:
        """The objective of a run: its last validated epoch (NaN if it failed or never validated)."""
        if result.status == "failed":
            return math.nan
        return self(result.last_val_dice())

    def of_test(self, result: Result) -> float:
        """The same objective on the test split (for the final comparison)."""
        return self(result.test_metrics.get("dice", [])) if result.ok else math.nan
