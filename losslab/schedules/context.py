"""What a class schedule sees at the end of each epoch: :class:`EpochContext`.

The trainer builds the start context once from the training split
(:meth:`EpochContext.start`), hands it to :meth:`ClassSchedule.begin`, and after every epoch
chains ``context = context.next(val_dice)`` and hands the new context to
:meth:`ClassSchedule.update`. A context is immutable plain data (tuples of python numbers), so
a learned rule can read any field without touching tensors or the host/device boundary.

NaN semantics: a ``NaN`` score means "this class was not scored this epoch" (no validation that
epoch, or the class is absent from every validation case). It carries no information: it never
sets a best score, and it counts as one more epoch without improvement.

Example:
    >>> ctx = EpochContext.start([0.9, 0.1], total_epochs=4)
    >>> ctx = ctx.next([0.95, 0.2]).next([0.94, float("nan")])
    >>> ctx.epoch, ctx.best_scores, ctx.epochs_since_best, ctx.progress
    (2, (0.95, 0.2), (1, 1), 0.5)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

__all__ = ["EpochContext"]

FREQUENCY_SUM_TOLERANCE = 1e-6


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _floats(values: Sequence[float] | Tensor, what: str) -> tuple[float, ...]:
    if isinstance(values, Tensor):
        values = values.detach().reshape(-1).cpu().tolist()
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(
            f"EpochContext.{what} must be a sequence of numbers, got {values!r}"
        ) from None


def _check_length(values: tuple, length: int, what: str) -> None:
    if len(values) != length:
        raise ValueError(
            f"EpochContext.{what} must have {length} entries (one per class, as "
            f"'frequencies'), got {len(values)}"
        )


def _check_frequencies(values: tuple[float, ...], what: str, *, sums_to_one: bool) -> None:
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise ValueError(f"EpochContext.{what} must be finite and >= 0, got {list(values)}")
    if sums_to_one and abs(sum(values) - 1.0) > FREQUENCY_SUM_TOLERANCE:
        raise ValueError(f"EpochContext.{what} must sum to 1, got {sum(values)!r}")


@dataclass(frozen=True)
class EpochContext:
    """The state of training at the end of epoch ``epoch``, as a class schedule sees it.

    All per-class tuples have one entry per class, background (class 0) included.

    Attributes:
        epoch: ``0`` before training (the :meth:`start` context), then ``1, 2, ...`` after each
            epoch; at most ``total_epochs``.
        total_epochs: the number of epochs of the run (``>= 1``).
        scores: this epoch's per-class validation Dice. ``NaN`` = not scored this epoch (no
            validation this epoch, or the class absent from the validation cases); all ``NaN`` at
            epoch 0. Finite or ``NaN``, never infinite.
        best_scores: per class, the best non-``NaN`` score of epochs ``1..epoch``; ``NaN`` while
            the class has never been scored.
        epochs_since_best: per class, epochs since the best score was set: ``0`` when this epoch
            set it (a strictly higher score; a tie keeps the earlier best and counts on), and
            ``epoch`` for a class never scored. A ``NaN`` score counts as an epoch without
            improvement.
        frequencies: class voxel frequencies of the training split: voxels of class ``c`` over
            all voxels, background included; sums to 1. A class absent from the training
            split has frequency 0.
        balancing_frequencies: the frequencies that frequency balancing uses (Hegde, paper
            001): voxels of class ``c`` over the voxels of the training cases where ``c`` is
            present (0 for an absent class); they need not sum to 1. The frequency-based
            class schedules (``inverse_frequency``, ``median_frequency``) read these. Defaults
            to ``frequencies`` when not given.

    Raises:
        ValueError: a tuple of the wrong length, frequencies that are negative, not finite or
            (``frequencies``) do not sum to 1, an infinite score, a bad epoch count.
    """

    epoch: int
    total_epochs: int
    scores: tuple[float, ...]
    best_scores: tuple[float, ...]
    epochs_since_best: tuple[int, ...]
    frequencies: tuple[float, ...]
    balancing_frequencies: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not _is_int(self.total_epochs) or self.total_epochs < 1:
            raise ValueError(
                f"EpochContext.total_epochs must be a positive integer, got {self.total_epochs!r}"
            )
        if not _is_int(self.epoch) or not 0 <= self.epoch <= self.total_epochs:
            raise ValueError(
                f"EpochContext.epoch must be an integer in [0, total_epochs={self.total_epochs}],"
                f" got {self.epoch!r}"
            )
        set_ = object.__setattr__
        set_(self, "epoch", int(self.epoch))
        set_(self, "total_epochs", int(self.total_epochs))
        frequencies = _floats(self.frequencies, "frequencies")
        if not frequencies:
            raise ValueError("EpochContext.frequencies must have one entry per class, got none")
        _check_frequencies(frequencies, "frequencies", sums_to_one=True)
        set_(self, "frequencies", frequencies)
        num_classes = len(frequencies)
        balancing = _floats(self.balancing_frequencies, "balancing_frequencies") or frequencies
        _check_length(balancing, num_classes, "balancing_frequencies")
        _check_frequencies(balancing, "balancing_frequencies", sums_to_one=False)
        set_(self, "balancing_frequencies", balancing)
        for what in ("scores", "best_scores"):
            values = _floats(getattr(self, what), what)
            _check_length(values, num_classes, what)
            if any(math.isinf(v) for v in values):
                raise ValueError(f"EpochContext.{what} must be finite or NaN, got {list(values)}")
            set_(self, what, values)
        since = tuple(self.epochs_since_best)
        _check_length(since, num_classes, "epochs_since_best")
        if any(not _is_int(s) or not 0 <= s <= self.epoch for s in since):
            raise ValueError(
                f"EpochContext.epochs_since_best must be integers in [0, epoch={self.epoch}], "
                f"got {list(since)}"
            )
        set_(self, "epochs_since_best", tuple(int(s) for s in since))

    @classmethod
    def start(
        cls,
        frequencies: Sequence[float] | Tensor,
        total_epochs: int,
        *,
        balancing_frequencies: Sequence[float] | Tensor | None = None,
    ) -> EpochContext:
        """The epoch-0 context, before any training: every score and best score ``NaN``,
        every ``epochs_since_best`` 0.

        Args:
            frequencies: class voxel frequencies of the training split, summing to 1.
            total_epochs: epochs of the run.
            balancing_frequencies: Hegde's frequencies (see the class docstring); defaults to
                ``frequencies``.
        """
        freq = _floats(frequencies, "frequencies")
        nan = (math.nan,) * len(freq)
        return cls(
            epoch=0,
            total_epochs=total_epochs,
            scores=nan,
            best_scores=nan,
            epochs_since_best=(0,) * len(freq),
            frequencies=freq,
            balancing_frequencies=(
                ()
                if balancing_frequencies is None
                else _floats(balancing_frequencies, "balancing_frequencies")
            ),
        )

    def next(self, scores: Sequence[float] | Tensor) -> EpochContext:
        """The context of the next epoch (``epoch + 1``) given its per-class scores.

        ``NaN`` scores (class not scored) keep the best score and add one epoch since it.

        Raises:
            ValueError: ``scores`` has the wrong length, or this is the last epoch already.
        """
        if self.epoch == self.total_epochs:
            raise ValueError(
                f"EpochContext.next: epoch {self.epoch} is already the last (total_epochs)"
            )
        values = _floats(scores, "scores")
        _check_length(values, self.num_classes, "scores")
        best, since = [], []
        for score, old, n in zip(values, self.best_scores, self.epochs_since_best):
            if not math.isnan(score) and (math.isnan(old) or score > old):
                best.append(score)
                since.append(0)
            else:
                best.append(old)
                since.append(n + 1)
        return EpochContext(
            epoch=self.epoch + 1,
            total_epochs=self.total_epochs,
            scores=values,
            best_scores=tuple(best),
            epochs_since_best=tuple(since),
            frequencies=self.frequencies,
            balancing_frequencies=self.balancing_frequencies,
        )

    @property
    def num_classes(self) -> int:
        """``C``, background included."""
        return len(self.frequencies)

    @property
    def progress(self) -> float:
        """Training progress ``epoch / total_epochs``: 0 before training, 1 after the last epoch."""
        return self.epoch / self.total_epochs
