"""``SearchBackend``: what every search backend implements, and the records it keeps.

A backend proposes candidates and evaluates them through the study's :class:`Evaluator`; the study
(``study.py``) owns the loop, the budget, MLflow's parent run and the final table. A backend keeps
its own durable state (Optuna's storage; a population for genetic search), so that a study that
was stopped can be resumed without losing or repeating a finished evaluation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from losslab.candidate import Candidate
from losslab.search.evaluator import Evaluation, EvaluationCache
from losslab.training import Hook

__all__ = ["EvaluateFn", "SearchBackend", "TrialRecord"]


class EvaluateFn:
    """How a backend evaluates (the study wraps the evaluator with progress and tags)."""

    def __call__(
        self,
        candidate: Candidate,
        *,
        overrides: Mapping[str, Any],
        hooks: Sequence[Hook],
        tags: Mapping[str, str],
        origin: str,
        on_run: Callable[[str], None] | None = None,
    ) -> Evaluation: ...


@dataclass
class TrialRecord:
    """One finished trial, as a backend reports it."""

    number: int
    candidate: Candidate | None  # None when the draw itself was invalid
    status: str  # ok, failed, pruned
    value: float  # the objective on validation (NaN unless ok or pruned)
    eval_key: str = ""
    run_id: str | None = None
    reason: str = ""
    cached_from: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


class SearchBackend(ABC):
    """A search strategy over the study's space."""

    name: ClassVar[str]
    reclaimed: list[int]  # trials of dead workers that :meth:`open` failed and re-queued
    reclaimed_runs: list[str]  # their MLflow runs

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], *, epochs: int = 1) -> None:
        """Validate the backend's own section of the study file for evaluations of ``epochs``
        epochs (``ValueError`` whose message starts with the key path)."""
        return None

    @abstractmethod
    def open(self, *, resume: bool) -> EvaluationCache:
        """Create or load the durable state; reclaim work of dead workers; return the cache of
        evaluations that all workers of the study share."""

    @abstractmethod
    def used(self) -> int:
        """Trials that count against the budget: finished ones and those running elsewhere."""

    @abstractmethod
    def step(self, evaluate: EvaluateFn) -> TrialRecord:
        """Propose one candidate, evaluate it, record the outcome."""

    @abstractmethod
    def records(self) -> list[TrialRecord]:
        """Every finished trial of the study (all workers), in order."""

    def close(self) -> None:
        """Release what :meth:`open` holds."""
        return None
