"""Loss-term weight schedules: ``L = sum_k alpha_k(t) * L_k``, updated once per optimiser step.

:meth:`TermSchedule.step` gets the step index ``t`` (0-based), the total number of steps ``T`` and
the reduced values of the ``K`` terms at that step (shape ``[K]``). The work per step is a few tiny
tensor ops on the device of ``term_values`` and never reads a value back to the host, nor copies
one from it: weights computed from Python numbers (the ramps) are written on the device by fills
(:func:`on_device`), since ``torch.tensor([...], device="cuda")`` is a blocking host-to-device
copy, and only when they change.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from losslab.schedules.class_schedules import _plain

__all__ = [
    "LinearRamp",
    "Rebalance",
    "StaticTermWeights",
    "StepSwitch",
    "TermSchedule",
    "on_device",
]


def on_device(values: Sequence[float], device: torch.device) -> Tensor:
    """float32 ``[K]`` holding the Python numbers ``values``, written on ``device`` by fills.

    Equal to ``torch.tensor(values, dtype=torch.float32, device=device)`` without its copy from
    host memory, which would make a GPU wait for the host.
    """
    out = torch.empty(len(values), dtype=torch.float32, device=device)
    for k, value in enumerate(values):
        out[k].fill_(float(value))
    return out


def _progress(step: int, total_steps: int) -> float:
    """Training progress in [0, 1]: 0 at the first step, 1 at the last (``step`` is 0-based)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
    return min(max(step / max(total_steps - 1, 1), 0.0), 1.0)


class TermSchedule(ABC):
    """Weights ``alpha`` of shape ``[K]`` for the ``K`` terms of a compound loss.

    Subclasses store every keyword parameter under its own name (see :meth:`get_params`) and keep
    their mutable state in tensors or python numbers that :meth:`state_dict` writes as plain data.
    """

    name: ClassVar[str] = ""

    def __init__(self, num_terms: int) -> None:
        if int(num_terms) != num_terms or num_terms < 1:
            raise ValueError(f"num_terms must be a positive integer, got {num_terms!r}")
        self.num_terms = int(num_terms)
        self._weights = torch.ones(self.num_terms, dtype=torch.float32)

    @property
    def weights(self) -> Tensor:
        """Current weights ``[K]``."""
        return self._weights

    @abstractmethod
    def step(self, step: int, total_steps: int, term_values: Tensor | None = None) -> Tensor:
        """Advance one optimiser step and return the weights ``[K]`` to use for it."""

    def _require_terms(self, n: int) -> None:
        if self.num_terms != n:
            raise ValueError(f"{self.name} needs num_terms={n}, got {self.num_terms}")

    def _values(self, term_values: Tensor | None) -> Tensor:
        if term_values is None:
            raise ValueError(f"{self.name} needs term_values at every step")
        values = term_values.detach().reshape(-1).float()
        if values.shape[0] != self.num_terms:
            raise ValueError(
                f"term_values must have {self.num_terms} entries, got {values.shape[0]}"
            )
        return values

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the keyword parameters of the constructor (``num_terms`` excluded)."""
        names = list(inspect.signature(cls.__init__).parameters)
        return [n for n in names if n not in ("self", "num_terms")]

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as a plain dict; ``type(self)(K, **get_params())`` rebuilds it."""
        return {n: _plain(getattr(self, n)) for n in self.param_names()}

    def state_dict(self) -> dict[str, Any]:
        """Mutable state as plain JSON-able data (reads tensors back: not for every step)."""
        return {"weights": self._weights.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state written by :meth:`state_dict`."""
        self._weights = torch.tensor(state["weights"], dtype=torch.float32)


class StaticTermWeights(TermSchedule):
    """Fixed weights (default all 1)."""

    name = "static"

    def __init__(self, num_terms: int, *, weights: Sequence[float] | None = None) -> None:
        super().__init__(num_terms)
        if weights is not None:
            if len(weights) != self.num_terms:
                raise ValueError(f"weights must have {self.num_terms} entries, got {len(weights)}")
            self._weights = torch.tensor([float(w) for w in weights], dtype=torch.float32)
        self._given = weights

    def get_params(self) -> dict[str, Any]:
        return {"weights": _plain(self._given)}

    def step(self, step: int, total_steps: int, term_values: Tensor | None = None) -> Tensor:
        if term_values is not None and self._weights.device != term_values.device:
            self._weights = on_device(self._weights.tolist(), term_values.device)
        return self._weights


class _MixingSchedule(TermSchedule):
    """Two terms mixed as ``alpha = [1 - a, a]`` (Hegde et al.: ``(1-a) wCE + a wDice``).

    ``a`` is a Python number; the weights are written on the device only when it changes (a
    returned tensor is never changed afterwards: the next different ``a`` gets a new one).
    """

    def __init__(self, num_terms: int) -> None:
        super().__init__(num_terms)
        self._require_terms(2)
        self._weights = torch.tensor([1.0, 0.0])
        self._mixed: float | None = None  # the ``a`` of ``_weights`` (None: not known)

    def _set(self, a: float, term_values: Tensor | None) -> Tensor:
        device = term_values.device if term_values is not None else self._weights.device
        if a != self._mixed or device != self._weights.device:
            self._weights = on_device([1.0 - a, a], device)
            self._mixed = a
        return self._weights

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._mixed = None


class LinearRamp(_MixingSchedule):
    """Hegde et al.'s CE -> Dice ramp: ``a`` goes linearly from 0 to 1 between ``start`` and
    ``end``, fractions of training (progress ``t / (T - 1)``)."""

    name = "ramp"

    def __init__(self, num_terms: int = 2, *, start: float = 0.0, end: float = 1.0) -> None:
        super().__init__(num_terms)
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(f"need 0 <= start < end <= 1, got start={start!r}, end={end!r}")
        self.start = start
        self.end = end

    def step(self, step: int, total_steps: int, term_values: Tensor | None = None) -> Tensor:
        p = _progress(step, total_steps)
        return self._set(
            min(max((p - self.start) / (self.end - self.start), 0.0), 1.0), term_values
        )


class StepSwitch(_MixingSchedule):
    """Hegde et al.'s step variant: ``a = 0`` while progress ``< at``, then 1."""

    name = "step"

    def __init__(self, num_terms: int = 2, *, at: float = 0.5) -> None:
        super().__init__(num_terms)
        if not 0.0 <= at <= 1.0:
            raise ValueError(f"at must be in [0, 1], got {at!r}")
        self.at = at

    def step(self, step: int, total_steps: int, term_values: Tensor | None = None) -> Tensor:
        return self._set(1.0 if _progress(step, total_steps) >= self.at else 0.0, term_values)


class Rebalance(_MixingSchedule):
    """Rebalance (Hun 2021): ``a`` grows by a constant each step, from 0 to 1 at the last step.

    The increment is recomputed as ``(1 - a) / steps left``, which equals ``1 / (T - 1)`` on an
    uninterrupted run and still ends at 1 if ``total_steps`` changes on resume.
    """

    name = "rebalance"

    def __init__(self, num_terms: int = 2) -> None:
        super().__init__(num_terms)
        self._a = 0.0
        self._calls = 0

    def step(self, step: int, total_steps: int, term_values: Tensor | None = None) -> Tensor:
        if self._calls > 0:
            self._a += (1.0 - self._a) / max(total_steps - step, 1)
        self._calls += 1
        return self._set(min(self._a, 1.0), term_values)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "a": self._a, "calls": self._calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._a = float(state["a"])
        self._calls = int(state["calls"])
