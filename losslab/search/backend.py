"""``SearchBackend``: a search strategy as ask and tell, and nothing else.

The study (``study.py``) owns the loop, the budget, the evaluator, MLflow and the study store;
a backend only proposes candidates and learns from their outcomes::

    slots = store.reserve(backend.batch_size())     # entries reserved in the ledger
    proposals = backend.ask(slots)                  # one candidate per slot (a GP generation)
    ... each proposal is evaluated (cached, claimed, recorded) ...
    backend.tell(slot, proposal, record, result)    # the outcome, as the ledger recorded it

A backend keeps whatever it must remember across workers and resumes in ``context.state``
(JSON values in the study store), or derives it from ``context.records()`` (the ledger), so a
resumed study continues where it stopped. A slot with ``retry`` re-runs an interrupted
evaluation: the loop evaluates ``slot.retry`` whatever the backend proposes for it.

A backend registers itself by name (``registry.py``) and validates its own section of the
study file (``optuna:``, ``gp:``...) and the space it can search. The contract test
(``tests/search/test_backend_contract.py``) runs every registered backend through budget,
rerun, kill and resume, failing candidates and two workers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from losslab.candidate import Candidate
from losslab.search.objective import Objective
from losslab.search.space import SearchSpace
from losslab.training import Hook, Result, TrainConfig

__all__ = ["BackendContext", "SearchBackend"]


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
    ``rung``, ``seed``, ``root``: its place on the study's fidelity ladder (``ladder.py``): a
    backend's own proposals are at rung 0 with seed 0; the study makes the promotions and race
    seeds of entry ``root`` itself (never a backend).
    """

    candidate: Candidate | None
    overrides: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    hooks: Sequence[Hook] = ()
    invalid: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    variant: dict[str, Any] = field(default_factory=dict)
    withdrawn: bool = False
    rung: int = 0
    seed: int = 0
    root: int | None = None

    @property
    def on_ladder(self) -> bool:
        """Whether the study made it (a promotion or a race seed), not the backend."""
        return self.root is not None


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
    rung: int = 0  # its fidelity ladder's rung (``ladder.py``)
    seed: int = 0  # the seed index at the top rung (the study's seed plus it)
    root: int | None = None  # the rung-0 entry it promotes or races (None: its own proposal)


def replayed(slot: Slot, proposal: Proposal) -> Proposal:
    """What a slot runs: an interrupted evaluation again as it was (``slot.retry``, with the
    backend's hooks of ``proposal``), else ``proposal``."""
    if slot.retry is None:
        return proposal
    retry = slot.retry
    return Proposal(
        retry.candidate,
        retry.overrides,
        retry.params or proposal.params,
        proposal.hooks,
        tags=retry.tags or proposal.tags,
        variant=retry.variant or proposal.variant,
        rung=retry.rung,
        seed=retry.seed,
        root=retry.root,
    )


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


@dataclass
class BackendContext:
    """What a backend is given when a study opens.

    Attributes:
        space: what it may propose.
        objective: what the study maximises (per epoch and at the end).
        settings: its own validated section of the study file (:meth:`SearchBackend.check_settings`).
        seed: this worker's seed (the study's for the first worker, derived for the others).
        epochs: epochs of one evaluation (the pruning resource).
        state: its durable state in the study store.
        records: the ledger's finished entries (every worker's), on demand.
        native: the study store's own engine, for a backend built on it (the Optuna study,
            whose sampler and pruner the Optuna backend sets); other backends ignore it.
        dataset: the study's dataset, for a backend that screens candidates on data (GP).
        log: ``log(metrics, step, tags=None)`` records the backend's own figures (a GP
            generation's) on the study's MLflow parent run.
        train: the train config of one evaluation (the fidelity applied), for a backend that
            trains networks of its own (ML3's inner loop); ``None`` when the study gives none.
        folder: the study's folder (``ledger.study_folder``: beside its store), where a
            backend keeps files (ML3's loss networks); ``None`` when the study gives none.
        study_seed: the study file's seed, the same in every worker (``seed`` differs): for
            what every worker must derive alike (a GP generation); ``None``: use ``seed``.
    """

    space: SearchSpace
    objective: Objective
    settings: Any
    seed: int
    epochs: int
    state: BackendState
    records: Callable[[], list[TrialRecord]]
    native: Any = None
    dataset: Any = None
    log: Callable[..., None] = field(default=lambda metrics, step, tags=None: None)
    train: Any = None
    folder: Path | None = None
    study_seed: int | None = None


class SearchBackend(ABC):
    """A search strategy over the study's space (see the module docstring)."""

    name: ClassVar[str]
    # Keys of ``space:`` that this backend searches itself (expression trees, rules), kept as
    # written in ``SearchSpace.structure`` and checked by :meth:`check_space`.
    space_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def check_settings(cls, raw: Mapping[str, Any], *, epochs: int) -> Any:
        """Validate the backend's section of the study file for evaluations of ``epochs``
        epochs; return the settings the backend is built with. Errors are ``ValueError`` whose
        message starts with the key path (``optuna.pruner.min_resource: ...``)."""
        if raw:
            raise ValueError(
                f"{cls.name}.{sorted(raw)[0]}: unknown key; {cls.name} has no settings"
            )
        return {}

    @classmethod
    def check_space(cls, space: SearchSpace) -> None:
        """Refuse a space this backend cannot search (``SpaceError`` naming the key)."""
        return None

    @classmethod
    def check_run(cls, settings: Any, train: TrainConfig) -> None:
        """Refuse settings that do not fit one evaluation's training (``train``: the study's
        train config at its fidelity), such as a greedy decision interval longer than the run;
        ``ValueError`` starting with the key path, as :meth:`check_settings`."""
        return None

    @classmethod
    def check_fit(cls, space: SearchSpace, settings: Any) -> None:
        """Refuse settings that do not fit the space (a greedy run steering a parameter that a
        start does not have); ``ValueError`` starting with the key path, as
        :meth:`check_settings`. Called after both were checked on their own."""
        return None

    def __init__(self, context: BackendContext):
        self.context = context

    #: What :meth:`batch_size` answers when it has nothing to propose now but may have soon
    #: (the rest of a generation is training in other workers): the study waits and asks again.
    WAIT: ClassVar[int] = -1

    def batch_size(self) -> int:
        """How many slots :meth:`ask` fills at once (a generation for genetic search); 0 when the
        search is over, :attr:`WAIT` when other workers must finish first. The study reserves at
        most ``workers.batch`` slots at once, so that workers share a large batch."""
        return 1

    @abstractmethod
    def ask(self, slots: Sequence[Slot]) -> list[Proposal]:
        """One proposal per slot, in order."""

    def tell(
        self, slot: Slot, proposal: Proposal, record: TrialRecord, result: Result | None
    ) -> None:
        """The outcome of one proposal (``result`` ``None`` for an invalid draw). Only the
        backend's own proposals are told (rung 0); the ladder's promotions and race seeds of
        a proposal are in :attr:`BackendContext.records` (``rung``, ``seed``, ``root``)."""
        return None

    def again(self, record: TrialRecord) -> Proposal:
        """The proposal that evaluates ``record`` again at a higher rung or another seed (the
        fidelity ladder's promotions and race seeds): its candidate, overrides, params and
        variant. A backend whose proposals carry hooks that steer training (greedy) gives
        them again here."""
        return Proposal(
            record.candidate,
            dict(record.overrides),
            dict(record.params),
            variant=dict(record.variant),
        )

    def close(self) -> None:
        """Release what the backend holds."""
        return None
