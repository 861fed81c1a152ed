"""Class-weight schedules: the abstract interface and the static (frequency-based) schedules.

A class schedule owns one weight per class, ``w`` of shape ``[C]`` (float32), that multiplies the
per-class loss vector. The trainer calls :meth:`ClassSchedule.begin` once before the first
training step with the epoch-0 :class:`~losslab.schedules.context.EpochContext` (class
frequencies of the training split, total epochs), then :meth:`ClassSchedule.update` at the end of
every epoch ``j = 1, 2, ...`` with the context of that epoch, whose ``scores`` are the per-class
validation Dice ``S_c(j)``; ``NaN`` marks a class that was not scored that epoch and carries no
information.

Example:
    >>> schedule = UniformWeights(3)
    >>> ctx = EpochContext.start([0.8, 0.15, 0.05], total_epochs=10)
    >>> schedule.begin(ctx)
    >>> schedule.update(ctx.next([0.99, 0.7, 0.2])).tolist()
    [1.0, 1.0, 1.0]
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

from losslab.schedules.context import EpochContext

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
    :meth:`_update`, which gets the whole :class:`EpochContext` (scores, best scores, epochs
    since the best, class frequencies, progress); they may override :meth:`begin` to set up from
    the start context. Weights start at 1.

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

    def begin(self, context: EpochContext) -> None:
        """Called once before the first training step with the epoch-0 context.

        The default only checks the number of classes; the frequency-based schedules take their class frequencies
        from ``context`` here unless they were given ``frequencies`` or ``weights``.

        Raises:
            ValueError: ``context`` has the wrong number of classes.
        """
        _float_list(context.frequencies, self.num_classes, "context.frequencies")

    def update(self, context: EpochContext) -> Tensor:
        """Take the context of the epoch that just ended and return the new weights ``[C]``.

        ``context.scores`` are that epoch's per-class validation Dice (``NaN`` = not scored).

        Raises:
            ValueError: ``context.scores`` has the wrong length, or ``context.epoch`` does not
                increase.
        """
        _float_list(context.scores, self.num_classes, "scores")
        epoch = context.epoch
        if self._last_epoch is not None and epoch <= self._last_epoch:
            raise ValueError(f"epoch must increase: got {epoch} after {self._last_epoch}")
        self._last_epoch = int(epoch)
        self._update(context)
        return self.weights

    @abstractmethod
    def _update(self, context: EpochContext) -> None:
        """Change ``self._weights`` in place from the context of the epoch that just ended
        (``context.scores``: NaN = not scored)."""

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

    def _update(self, context: EpochContext) -> None:
        pass


class _FrequencyWeights(ClassSchedule):
    """Static weights from class frequencies: given as ``frequencies``, given directly as
    ``weights``, or (neither given) taken from the training split in :meth:`begin`.

    Before :meth:`begin` the weights of a schedule given neither are 1; given ones always win
    over the context's frequencies.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        frequencies: Sequence[float] | None = None,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(num_classes)
        if frequencies is not None and weights is not None:
            raise ValueError(f"{self.name}: give at most one of 'frequencies' or 'weights'")
        self.frequencies = frequencies
        # ``weights`` is also the name of the read-only property, hence the private attribute.
        self._given_weights = weights
        if weights is not None:
            self._set(_float_list(weights, self.num_classes, "weights"))
        elif frequencies is not None:
            self._set(self._weights_of(frequencies, "frequencies"))

    def _weights_of(self, frequencies: Scores, what: str) -> list[float]:
        freq = _float_list(frequencies, self.num_classes, what)
        bad = [f for f in freq if not math.isfinite(f) or f < 0]
        if bad:
            raise ValueError(f"{self.name}: {what} must be finite and >= 0, got {bad}")
        if not any(f > 0 for f in freq):
            raise ValueError(f"{self.name}: at least one of {what} must be > 0")
        return self._from_frequencies(freq)

    def _set(self, values: list[float]) -> None:
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"{self.name}: weights must be finite and >= 0, got {values}")
        self._weights = torch.tensor(values, dtype=torch.float32)

    def begin(self, context: EpochContext) -> None:
        """Take the weights from ``context.balancing_frequencies`` (Hegde's frequencies of the
        training split) unless ``frequencies`` or ``weights`` were given."""
        super().begin(context)
        if self.frequencies is None and self._given_weights is None:
            self._set(self._weights_of(context.balancing_frequencies, "context frequencies"))

    def _from_frequencies(self, freq: list[float]) -> list[float]:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        return {"frequencies": _plain(self.frequencies), "weights": _plain(self._given_weights)}

    def _update(self, context: EpochContext) -> None:
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
    """Median frequency balancing (Hegde et al.): ``median(freq) / freq_c`` over ``freq > 0``;
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
    """Median frequency balancing (Hegde et al.): ``w_c = median(freq) / freq_c``.

    ``freq_c`` is given by the caller (Hegde: voxels of class ``c`` over voxels of the images where
    ``c`` is present). Choices: the median is taken over the classes with ``freq > 0`` (absent
    classes would drag it to 0) and is the mean of the two middle values for an even count
    (``statistics.median``); classes with ``freq_c = 0`` get weight 0.
    """

    name = "median_frequency"

    def _from_frequencies(self, freq: list[float]) -> list[float]:
        return median_frequency_weights(freq)
