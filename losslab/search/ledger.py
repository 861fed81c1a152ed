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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from losslab.candidate import Candidate
from losslab.search.evaluator import Evaluation, EvaluationCache
from losslab.search.objective import Objective
from losslab.search.workers import WorkerSettings
from losslab.training import Hook

__all__ = [
    "BackendState",
    "Proposal",
    "Reclaimed",
    "Slot",
    "StudyMismatch",
    "StudyStore",
    "TrialRecord",
    "default_storage_url",
    "open_store",
    "study_folder",
]


class StudyMismatch(ValueError):
    """The storage holds a study of this name with a different configuration."""


@dataclass
class Proposal:
    """What a backend asks to evaluate in one slot.

    ``candidate`` is ``None`` (with ``invalid`` saying why) when the backend's draw is not a
    valid candidate: the entry is recorded as failed and counts against the budget.
    ``params`` describes the draw in the backend's own terms (shown in the ledger);
    ``hooks`` are trainer hooks the backend wants on this evaluation (a pruner);
    ``tags`` are added to the evaluation's MLflow run (a GP individual's generation);
    ``variant`` says what the hooks change about training (a greedy controller's plan): it is
    part of the evaluation key, so a controlled run never shares the cached plain run's result.
    ``withdrawn``: the backend has nothing for this slot after all (another worker took the
    last individual of a generation meanwhile); the slot is given back, not counted.
    """

    candidate: Candidate | None
    overrides: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    hooks: Sequence[Hook] = ()
    invalid: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    variant: dict[str, Any] = field(default_factory=dict)
    withdrawn: bool = False


@dataclass
class Slot:
    """One reserved ledger entry (RUNNING, held by this worker).

    ``retry`` is the proposal of an evaluation that was interrupted (a stopped worker, the time
    budget) and must run again as it was. ``native`` is the store's own handle of the entry, for
    backends that draw through the store's engine (the Optuna backend draws in the trial).
    """

    number: int
    retry: Proposal | None = None
    native: Any = None


@dataclass
class TrialRecord:
    """One finished ledger entry."""

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
    worker: str = ""
    variant: dict[str, Any] = field(default_factory=dict)  # what its hooks changed (greedy)


@dataclass(frozen=True)
class Reclaimed:
    """An entry of a dead worker that :meth:`StudyStore.open` failed and queued again."""

    number: int
    run_id: str | None


class BackendState(ABC):
    """A backend's durable state: JSON values by key, shared by every worker of the study."""

    @abstractmethod
    def get(self, key: str, default: Any = None) -> Any: ...

    @abstractmethod
    def put(self, key: str, value: Any) -> None: ...

    def claim(self, key: str) -> bool:
        """Take ``key`` for this worker (a GP individual to train); ``False`` when another live
        worker holds it. Always ``True`` where no other worker can exist."""
        return True

    def taken(self, key: str) -> bool:
        """Whether another live worker holds ``key``."""
        return False


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


def default_storage_url(tracking_uri: str) -> str:
    """A journal file beside a local MLflow store (``sqlite:///dir/mlflow.db`` -> ``dir``)."""
    folder = Path(".")
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri[len("sqlite:///") :]).parent
    return f"journal:{folder / 'optuna-studies.log'}"


def study_folder(storage_url: str | None, tracking_uri: str) -> Path:
    """The folder a study keeps its files in (ML3's loss networks): the folder of its journal
    or SQLite store, else of its local MLflow store, else the current folder."""
    url = storage_url or default_storage_url(tracking_uri)
    if url.startswith("journal:"):
        return Path(url[len("journal:") :].removeprefix("//")).parent
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).parent
    if "://" not in url and url.endswith((".log", ".journal")):
        return Path(url).parent
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///") :]).parent
    return Path(".")


def open_store(
    url: str,
    *,
    study_name: str,
    fingerprint: str,
    source: str = "",
    workers: WorkerSettings | None = None,
    metric_name: str = "objective",
) -> StudyStore:
    """The study store at ``url`` (an Optuna storage URL or ``journal:PATH``; see
    ``storage.py``); not opened yet."""
    from losslab.search.store import OptunaStudyStore

    return OptunaStudyStore(
        url,
        study_name=study_name,
        fingerprint=fingerprint,
        source=source,
        workers=workers,
        metric_name=metric_name,
    )
