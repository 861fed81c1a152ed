"""Score-driven class schedules of the Runtime Freezing paper (Willoughby and Voiculescu, 2024): TCF, PCF and CBS.

Scores ``S_c(j)`` are the per-class validation Dice at the end of epoch ``j = 1, 2, ...`` (the
``scores`` of the :class:`~losslab.schedules.context.EpochContext` given to ``update``); weights
start at 1. The paper's ``S_c(0) = 1`` only initialises and never enters a plateau window. A ``NaN``
score (class not scored that epoch) carries no information: it never freezes, triggers or boosts.
Background (class 0) is left at weight 1 unless ``include_background=True``.
"""

from __future__ import annotations

import math
from typing import Any

from losslab.schedules.class_schedules import ClassSchedule, _nan_to_none, _none_to_nan
from losslab.schedules.context import EpochContext


def _check_weight(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


class _ScoreDrivenSchedule(ClassSchedule):
    """Shared parameters and helpers of the schedules driven by validation scores."""

    def __init__(self, num_classes: int, *, frozen_weight: float, include_background: bool) -> None:
        super().__init__(num_classes)
        _check_weight("frozen_weight", frozen_weight)
        self.frozen_weight = frozen_weight
        self.include_background = include_background

    def _scheduled_classes(self) -> range:
        return range(0 if self.include_background else 1, self.num_classes)


class ThresholdClassFreezing(_ScoreDrivenSchedule):
    """TCF (Willoughby and Voiculescu 2024): ``w_c = frozen_weight if S_c(j) > threshold else 1``, every epoch.

    Recomputed from the current scores, so a class that falls back to ``S_c <= threshold`` gets 1
    again. Choice: a ``NaN`` score keeps the class's previous weight.

    Example:
        >>> tcf = ThresholdClassFreezing(3)
        >>> start = EpochContext.start([0.8, 0.15, 0.05], total_epochs=10)
        >>> tcf.update(start.next([0.99, 0.95, 0.5])).tolist()
        [1.0, 0.10000000149011612, 1.0]
    """

    name = "tcf"

    def __init__(
        self,
        num_classes: int,
        *,
        threshold: float = 0.9,
        frozen_weight: float = 0.1,
        include_background: bool = False,
    ) -> None:
        super().__init__(
            num_classes, frozen_weight=frozen_weight, include_background=include_background
        )
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        self.threshold = threshold

    def _update(self, context: EpochContext) -> None:
        scores = context.scores
        for c in self._scheduled_classes():
            if not math.isnan(scores[c]):
                self._weights[c] = self.frozen_weight if scores[c] > self.threshold else 1.0


class PlateauClassFreezing(_ScoreDrivenSchedule):
    """PCF (Willoughby and Voiculescu 2024): freeze the best unfrozen class once its score has plateaued.

    With ``u`` the epoch of the last trigger (the first epoch seen at start, i.e. 1) and ``j`` the
    current epoch, take ``i = argmax_c S_c(j)`` over the unfrozen scheduled classes (ties: lowest
    index) and trigger when::

        | max_{t in [max(j - delta, u), j]} S_i(t) - max_{t in [u, j]} S_i(t) | > epsilon

    i.e. the best score of the last ``delta`` epochs is more than ``epsilon`` below the best since
    the last trigger. On trigger ``w_i = frozen_weight`` and ``u = j``; frozen classes stay frozen,
    so two triggers are at least ``delta + 1`` epochs apart. ``NaN`` scores are skipped in the maxima.
    """

    name = "pcf"

    def __init__(
        self,
        num_classes: int,
        *,
        delta: int = 2,
        epsilon: float = 0.005,
        frozen_weight: float = 0.1,
        include_background: bool = False,
    ) -> None:
        super().__init__(
            num_classes, frozen_weight=frozen_weight, include_background=include_background
        )
        if int(delta) != delta or delta < 1:
            raise ValueError(f"delta must be a positive integer, got {delta!r}")
        if not math.isfinite(epsilon) or epsilon < 0:
            raise ValueError(f"epsilon must be finite and >= 0, got {epsilon!r}")
        self.delta = delta
        self.epsilon = epsilon
        self._frozen = [False] * self.num_classes
        self._last_trigger: int | None = None
        # (epoch, scores) since the last trigger: older epochs never enter a window again.
        self._history: list[tuple[int, list[float]]] = []

    @property
    def frozen(self) -> list[bool]:
        """Which classes are frozen, one flag per class."""
        return list(self._frozen)

    def _update(self, context: EpochContext) -> None:
        epoch, scores = context.epoch, list(context.scores)
        if self._last_trigger is None:
            self._last_trigger = epoch
        self._history.append((epoch, scores))
        best = self._plateaued_class(epoch, scores)
        if best is None:
            return
        self._frozen[best] = True
        self._weights[best] = self.frozen_weight
        self._last_trigger = epoch
        self._history = [(t, s) for t, s in self._history if t >= epoch]
        self._on_trigger(scores)

    def _plateaued_class(self, epoch: int, scores: list[float]) -> int | None:
        """The best unfrozen class if it triggers at ``epoch``, else ``None``."""
        candidates = [
            c
            for c in self._scheduled_classes()
            if not self._frozen[c] and not math.isnan(scores[c])
        ]
        if not candidates:
            return None
        i = max(candidates, key=lambda c: scores[c])
        u = self._last_trigger
        assert u is not None
        start = max(epoch - self.delta, u)
        since = [s[i] for t, s in self._history if t >= u and not math.isnan(s[i])]
        window = [s[i] for t, s in self._history if t >= start and not math.isnan(s[i])]
        return i if abs(max(window) - max(since)) > self.epsilon else None

    def _on_trigger(self, scores: list[float]) -> None:
        """Hook run after a class was frozen at this epoch (CBS boosts the others here)."""

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["frozen"] = list(self._frozen)
        state["last_trigger"] = self._last_trigger
        state["history"] = [[t, _nan_to_none(s)] for t, s in self._history]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._frozen = [bool(f) for f in state["frozen"]]
        self._last_trigger = state["last_trigger"]
        self._history = [(int(t), _none_to_nan(s)) for t, s in state["history"]]


class ClassBoostStrategy(PlateauClassFreezing):
    """CBS (Willoughby and Voiculescu 2024): PCF's trigger and freezing, plus a boost of the classes still learning.

    On trigger every unfrozen scheduled class ``k`` gets ``w_k = min(1 / (S_k(j) + zeta), cap)``;
    weights are kept between triggers. ``zeta`` keeps the boost finite at ``S_k = 0``; the paper
    leaves it open, and the default 0.1 bounds the boost of a perfect class at ``1 / 1.1`` while
    ``cap = 2`` binds for ``S_k < 0.4``. A class with a ``NaN`` score keeps its weight.
    """

    name = "cbs"

    def __init__(
        self,
        num_classes: int,
        *,
        delta: int = 2,
        epsilon: float = 0.005,
        frozen_weight: float = 0.1,
        zeta: float = 0.1,
        cap: float = 2.0,
        include_background: bool = False,
    ) -> None:
        super().__init__(
            num_classes,
            delta=delta,
            epsilon=epsilon,
            frozen_weight=frozen_weight,
            include_background=include_background,
        )
        if not math.isfinite(zeta) or zeta <= 0:
            raise ValueError(f"zeta must be finite and > 0, got {zeta!r}")
        _check_weight("cap", cap)
        self.zeta = zeta
        self.cap = cap

    def _on_trigger(self, scores: list[float]) -> None:
        for k in self._scheduled_classes():
            if not self._frozen[k] and not math.isnan(scores[k]):
                self._weights[k] = min(1.0 / (scores[k] + self.zeta), self.cap)
