"""Loss-parameter schedules: the values of a candidate's loss parameters over training steps.

A loss parameter is addressed by name (see :func:`losslab.candidate.Candidate.loss_parameters`):
``beta`` for a parameter that one term alone uses, ``term1.eps`` when several terms use the
name, and ``weight0``, ``weight1``... for the static term weights ``alpha_k``. A parameter
schedule says which value each address takes from which training step on; the trainer reads
it before every optimiser step and recompiles the loss when a value changes.

:class:`PiecewiseParams` (``piecewise``) is the schedule a greedy controller leaves behind: a
fixed, piecewise-constant trajectory that can be replayed on other seeds without the cost of
the look-ahead::

    >>> schedule = PiecewiseParams(steps=[4, 8], values={"beta": [0.8, 0.9]})
    >>> schedule.values_at(3), schedule.values_at(4), schedule.values_at(100)
    ({}, {'beta': 0.8}, {'beta': 0.9})

Pure python: no tensors, no host sync.
"""

from __future__ import annotations

import bisect
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = ["ParamSchedule", "PiecewiseParams"]


class ParamSchedule(ABC):
    """Values of loss parameters by training step (0-based, the step about to be taken)."""

    name: ClassVar[str] = ""

    @abstractmethod
    def values_at(self, step: int) -> dict[str, float]:
        """The scheduled values at ``step``; an address absent keeps the candidate's own value."""

    @abstractmethod
    def addresses(self) -> list[str]:
        """Every address the schedule sets (checked against the candidate before training)."""

    @classmethod
    def param_names(cls) -> list[str]:
        return [n for n in inspect.signature(cls.__init__).parameters if n != "self"]


class PiecewiseParams(ParamSchedule):
    """Piecewise-constant values: ``values[a][i]`` holds from ``steps[i]`` until ``steps[i + 1]``.

    Before ``steps[0]`` every parameter keeps the candidate's own value.

    Args:
        steps: strictly increasing training steps (``>= 0``) at which values change.
        values: address -> one value per step.

    Raises:
        ValueError: naming the entry at fault (unsorted steps, a length mismatch, a value that is
            not a finite number).
    """

    name = "piecewise"

    def __init__(self, *, steps: Sequence[int], values: Mapping[str, Sequence[float]]) -> None:
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence) or not steps:
            raise ValueError(f"piecewise.steps: a non-empty list of steps, got {steps!r}")
        for i, step in enumerate(steps):
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise ValueError(f"piecewise.steps[{i}]: an integer >= 0, got {step!r}")
            if i and step <= steps[i - 1]:
                raise ValueError(
                    f"piecewise.steps[{i}]: steps must increase, got {steps[i - 1]} then {step}"
                )
        if not isinstance(values, Mapping) or not values:
            raise ValueError(f"piecewise.values: a non-empty mapping, got {values!r}")
        for address, series in values.items():
            if isinstance(series, (str, bytes)) or not isinstance(series, Sequence):
                raise ValueError(f"piecewise.values.{address}: a list of numbers, got {series!r}")
            if len(series) != len(steps):
                raise ValueError(
                    f"piecewise.values.{address}: {len(series)} values for {len(steps)} steps"
                )
            for i, value in enumerate(series):
                if (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not math.isfinite(value)
                ):
                    raise ValueError(
                        f"piecewise.values.{address}[{i}]: a finite number, got {value!r}"
                    )
        self.steps = [int(s) for s in steps]
        self.values = {str(a): [float(v) for v in series] for a, series in sorted(values.items())}

    def values_at(self, step: int) -> dict[str, float]:
        index = bisect.bisect_right(self.steps, step) - 1
        if index < 0:
            return {}
        return {address: series[index] for address, series in self.values.items()}

    def addresses(self) -> list[str]:
        return list(self.values)

    def get_params(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "values": {a: list(v) for a, v in self.values.items()}}

    @classmethod
    def from_trajectory(cls, trajectory: Sequence[tuple[int, Mapping[str, float]]]):
        """The schedule of ``(step, values)`` decisions, keeping only the steps where a value
        changed (the first decision always), so a replay recompiles the loss no more often than
        needed."""
        if not trajectory:
            raise ValueError("piecewise: an empty trajectory has no schedule")
        addresses = sorted(trajectory[0][1])
        steps: list[int] = []
        series: dict[str, list[float]] = {a: [] for a in addresses}
        for step, values in trajectory:
            if sorted(values) != addresses:
                raise ValueError(
                    f"piecewise: the decision at step {step} sets {sorted(values)}, "
                    f"the first one {addresses}"
                )
            if steps and all(series[a][-1] == float(values[a]) for a in addresses):
                continue
            steps.append(int(step))
            for a in addresses:
                series[a].append(float(values[a]))
        return cls(steps=steps, values=series)
