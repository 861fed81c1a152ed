"""The study store's interface: the trial ledger, the shared evaluation cache, backend state.

Every backend of a study shares one :class:`StudyStore`. It holds what must survive a crash and
be seen by every worker of the study, on any machine:

- the **ledger**: one entry per evaluation a backend proposed (its candidate JSON, status,
  objective value, per-epoch objective curve, worker and heartbeat, evaluation key, MLflow run);
  an entry is *reserved* (RUNNING) before its candidate trains, so workers never overshoot the
  budget, and the entry of a worker that died is *reclaimed*: marked interrupted (not counted)
  and its candidate queued to run again;
- the **evaluation cache** and its **claims**, so that no evaluation key is trained twice by
  any worker, rerun or resume;
- each backend's **own state** (a population, a meta-network's hash), as JSON values.

The implementation (``store.py``) keeps all of it in an Optuna storage (journal file, SQLite,
PostgreSQL); this module and the study loop know nothing of Optuna.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from losslab.search.backend import BackendState, Proposal, Slot, TrialRecord
from losslab.search.evaluator import Evaluation, EvaluationCache
from losslab.search.objective import Objective
from losslab.training import Hook

__all__ = [
    "Reclaimed",
    "StudyMismatch",
    "StudyStore",
]


class StudyMismatch(ValueError):
    """The storage holds a study of this name with a different configuration."""


@dataclass(frozen=True)
class Reclaimed:
    """An entry of a dead worker that :meth:`StudyStore.open` failed and queued again."""

    number: int
    run_id: str | None


class StudyStore(ABC):
    """The ledger, the cache and the backends' state of one study (see the module docstring)."""

    reclaimed: list[Reclaimed]

    @abstractmethod
    def open(self, *, resume: bool, seed: int) -> int:
        """Create or load the study (``StudyMismatch`` when the name holds another
        configuration), register this worker and reclaim dead workers' entries. Returns this
        worker's seed: ``seed`` for the first worker of a fresh study, a derived one for the
        others, so that workers starting together do not propose the same candidates."""

    def load(self) -> None:
        """Open an existing study only to read it: nothing written, no worker registered
        (``ValueError`` when there is no such study)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be opened to read")

    @property
    @abstractmethod
    def cache(self) -> EvaluationCache:
        """The evaluation cache every worker of the study shares."""

    @abstractmethod
    def state(self, namespace: str) -> BackendState:
        """The durable state of one backend."""

    @abstractmethod
    def reserve(self, count: int) -> list[Slot]:
        """Reserve ``count`` entries for this worker (interrupted ones first)."""

    def ladder_taken(self) -> set[tuple[int, int, int]]:
        """The fidelity ladder's positions ``(rung, root, seed)`` that an entry holds while it
        runs, is queued, or is owed a rerun (``search/ladder.py``)."""
        return set()

    @abstractmethod
    def within_budget(self, slots: list[Slot], limit: int) -> list[Slot]:
        """The slots that fall within the first ``limit`` counted entries of the study; the
        others (reserved by several workers at once) are given back."""

    @property
    def native(self) -> Any:
        """The store's own engine, for backends built on it (``BackendContext.native``)."""
        return None

    @abstractmethod
    def start(self, slot: Slot, proposal: Proposal) -> None:
        """Record what ``slot`` will evaluate, before it trains."""

    @abstractmethod
    def link_run(self, slot: Slot, run_id: str) -> None:
        """Link the evaluation's MLflow run to the entry as soon as the run exists."""

    @abstractmethod
    def epoch_hook(self, slot: Slot, objective: Objective) -> Hook:
        """A trainer hook that refreshes the slot's heartbeat and records the objective curve."""

    @abstractmethod
    def finish(self, slot: Slot, evaluation: Evaluation | None, reason: str = "") -> TrialRecord:
        """Record the outcome (``evaluation`` ``None``: an invalid draw, failed for ``reason``)."""

    @abstractmethod
    def interrupt(self, slot: Slot, why: str, proposal: Proposal | None = None) -> None:
        """The slot's evaluation was cut short: not counted, queued to run again."""

    @abstractmethod
    def used(self) -> int:
        """Entries that count against the budget: finished ones and those running anywhere."""

    @abstractmethod
    def records(self) -> list[TrialRecord]:
        """Every finished, counted entry of the study (all workers), in order."""

    def reclaim(self) -> list[Reclaimed]:
        """Reclaim the entries of workers that died since :meth:`open` (none by default)."""
        return []

    def heartbeat(self) -> Any:
        """A context manager that keeps this worker's entries alive while it runs."""
        return contextlib.nullcontext()

    def running_elsewhere(self) -> int:
        """Entries other workers are running now (0 by default)."""
        return 0

    def queued(self) -> int:
        """Interrupted entries waiting to run again (:meth:`reserve` takes them first)."""
        return 0

    @abstractmethod
    def interrupted(self) -> list[int]:
        """Numbers of the entries cut short (retried, not counted)."""

    def close(self) -> None:
        """Release what :meth:`open` holds."""
        return None
