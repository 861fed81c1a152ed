"""Class-weight schedules: the abstract interface and the static (frequency-based) schedules.

A class schedule owns one weight per class, ``w`` of shape ``[C]`` (float32), that multiplies the
per-class loss vector. The trainer calls :meth:`ClassSchedule.update` at the end of every epoch
``j = 1, 2, ...`` with the per-class validation Dice ``S_c(j)``; ``NaN`` marks a class that was not
scored that epoch and carries no information.
"""

from __future__ import annotations

import inspect
import math
import statistics
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

Scores = Sequence[float] | Tensor


def _plain(value: Any) -> Any:
    """Turn a parameter value into plain JSON-able data (tensors and tuples become lists)."""
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def _float_list(values: Scores, length: int, what: str) -> list[float]:
    """Read a length-``length`` vector (sequence or tensor) as python floats; fail naming ``what``."""
    if isinstance(values, Tensor):
        values = values.detach().reshape(-1).cpu().tolist()
    out = [float(v) for v in values]
    if len(out) != length:
        raise ValueError(f"{what} must have {length} entries (one per class), got {len(out)}")
    return out


def _nan_to_none(values: Sequence[float]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values]


def _none_to_nan(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


class ClassSchedule(ABC):
    """Per-class loss weights that may change at the end of each epoch.

    Subclasses take ``num_classes`` and keyword parameters, store each parameter under its own name
    (scikit-learn style, so :meth:`get_params` can read them from the signature) and implement
    :meth:`_update`. Weights start at 1.

    Args:
        num_classes: Number of classes ``C``, background (class 0) included.
    """

    name: ClassVar[str] = ""

    def __init__(self, num_classes: int) -> None:
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self._weights = torch.ones(self.num_classes, dtype=torch.float32)
        self._last_epoch: int | None = None

    @property
    def weights(self) -> Tensor:
        """Current weights, float32 tensor of shape ``[C]`` (a copy)."""
        return self._weights.clone()

    def update(self, epoch: int, scores: Scores) -> Tensor:
        """Take the per-class validation Dice of epoch ``epoch`` and return the new weights ``[C]``.

        Raises:
            ValueError: ``scores`` has the wrong length, or ``epoch`` does not increase.
        """
        values = _float_list(scores, self.num_classes, "scores")
        if self._last_epoch is not None and epoch <= self._last_epoch:
            raise ValueError(f"epoch must increase: got {epoch} after {self._last_epoch}")
        self._last_epoch = int(epoch)
        self._update(int(epoch), values)
        return self.weights

    @abstractmethod
    def _update(self, epoch: int, scores: list[float]) -> None:
        """Change ``self._weights`` in place from the scores of ``epoch`` (NaN = not scored)."""

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the keyword parameters of the constructor (``num_classes`` excluded)."""
        names = list(inspect.signature(cls.__init__).parameters)
        return [n for n in names if n not in ("self", "num_classes")]

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as a plain dict; ``type(self)(C, **get_params())`` rebuilds it."""
        return {n: _plain(getattr(self, n)) for n in self.param_names()}

    def state_dict(self) -> dict[str, Any]:
        """Mutable state as plain JSON-able data (NaN written as ``None``)."""
        return {"weights": self._weights.tolist(), "last_epoch": self._last_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state written by :meth:`state_dict`."""
        weights = _float_list(state["weights"], self.num_classes, "state['weights']")
        self._weights = torch.tensor(weights, dtype=torch.float32)
        self._last_epoch = state["last_epoch"]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return (
            f"{type(self).__name__}(num_classes={self.num_classes}{', ' if params else ''}{params})"
        )


class UniformWeights(ClassSchedule):
    """All class weights 1, never changed (the baseline)."""

    name = "uniform"

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)

    def _update(self, epoch: int, scores: list[float]) -> None:
        pass


class _FrequencyWeights(ClassSchedule):
    """Static weights computed once from class frequencies, or given directly as ``weights``."""

    def __init__(
        self,
        num_classes: int,
        *,
        frequencies: Sequence[float] | None = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(num_classes)
        if (frequencies is None) == (weights is None):
            raise ValueError(f"{self.name}: give exactly one of 'frequencies' or 'weights'")
        self.frequencies = frequencies
        if weights is not None:
            values = _float_list(weights, self.num_classes, "weights")
        else:
            freq = _float_list(frequencies, self.num_classes, "frequencies")  # type: ignore[arg-type]
            bad = [f for f in freq if not math.isfinite(f) or f < 0]
            if bad:
                raise ValueError(f"{self.name}: frequencies must be finite and >= 0, got {bad}")
            if not any(f > 0 for f in freq):
                raise ValueError(f"{self.name}: at least one frequency must be > 0")
            values = self._from_frequencies(freq)
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"{self.name}: weights must be finite and >= 0, got {values}")
        # ``weights`` is also the name of the read-only property, hence the private attribute.
        self._given_weights = weights
        self._weights = torch.tensor(values, dtype=torch.float32)

    def _from_frequencies(self, freq: list[float]) -> list[float]:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        return {"frequencies": _plain(self.frequencies), "weights": _plain(self._given_weights)}

    def _update(self, epoch: int, scores: list[float]) -> None:
        pass


def inverse_frequency_weights(freq: Sequence[float]) -> list[float]:
    """``1 / freq_c`` rescaled so that present classes average 1; 0 where ``freq_c = 0``."""
    raw = [1.0 / f if f > 0 else 0.0 for f in freq]
    present = [r for r in raw if r > 0]
    if not present:
        return [0.0] * len(raw)
    mean = sum(present) / len(present)
    return [r / mean for r in raw]


def median_frequency_weights(freq: Sequence[float]) -> list[float]:
    """Median frequency balancing (Hegde, paper 001): ``median(freq) / freq_c`` over ``freq > 0``;
    0 where ``freq_c = 0``; an even count takes the mean of the two middle values."""
    present = [f for f in freq if f > 0]
    if not present:
        return [0.0] * len(freq)
    median = statistics.median(present)
    return [median / f if f > 0 else 0.0 for f in freq]


class InverseFrequencyWeights(_FrequencyWeights):
    """``w_c = 1 / freq_c``, rescaled so the weights of present classes average 1; ``freq_c = 0 -> 0``.

    The rescaling is our choice (raw inverse frequencies of rare foreground classes reach 1e4 and
    would change the effective learning rate); ``weights`` bypasses it.
    """

    name = "inverse_frequency"

    def _from_frequencies(self, freq: list[float]) -> list[float]:
        return inverse_frequency_weights(freq)


class MedianFrequencyWeights(_FrequencyWeights):
    """Median frequency balancing (Hegde, paper 001): ``w_c = median(freq) / freq_c``.

    ``freq_c`` is given by the caller (Hegde: voxels of class ``c`` over voxels of the images where
    ``c`` is present). Choices: the median is taken over the classes with ``freq > 0`` (absent
    classes would drag it to 0) and is the mean of the two middle values for an even count
    (``statistics.median``); classes with ``freq_c = 0`` get weight 0.
    """

    name = "median_frequency"

    def _from_frequencies(self, freq: list[float]) -> list[float]:
        return median_frequency_weights(freq)
