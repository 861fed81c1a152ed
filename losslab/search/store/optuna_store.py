"""The study store on an Optuna storage: ledger entries are Optuna trials.

One Optuna study per losslab study, in any Optuna storage (``storage.py``): a journal file that
processes on one machine share, SQLite, or PostgreSQL for many machines. Each ledger entry is a
trial: reserved with ``ask()`` (RUNNING, so every worker counts it against the budget), its
candidate and worker in the trial's user attributes, its per-epoch objective as intermediate
values, its outcome told as COMPLETE, PRUNED or FAIL (``losslab.failure`` says why). The
evaluation cache's results live beside the storage, not in the study's attributes
(``results_table.py``: the table ``losslab_results``, or ``<journal file>.results/<study>/``;
a study made before keeps them as ``losslab.eval.<key>``, still read). Its claims are
``losslab.claim.<key>``, each backend's state ``losslab.state.<backend>.<key>``.

A backend that draws through Optuna (TPE) sets its sampler and pruner on :attr:`study` (given to
it as ``context.native``) and draws in the slot's trial (``slot.native``); any other backend
never touches Optuna.

Every attribute set is one storage write (a synced journal line, a database commit), so an entry
writes only what it must: its worker as it is reserved (until its first beat, its start time is
its heartbeat: ``reruns.py``), its proposal with the candidate last (an entry that holds its
candidate holds all of its proposal), its run as the run starts, an epoch's heartbeat only when
the worker's own beats (``beat``, every ``workers.interval``) have not refreshed it for that
long, and at the end its evaluation key (its run again only when a cache hit brought another)
before it is told.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from losslab.candidate import Candidate
from losslab.search.backend import BackendState, Proposal, Slot, TrialRecord
from losslab.search.evaluator import Evaluation, EvaluationCache
from losslab.search.objective import Objective
from losslab.search.store.attrs import (
    ALIVE,
    CANDIDATE,
    FAILURE,
    HEARTBEAT,
    INTERRUPTED,
    LADDER,
    OVERRIDES,
    PARAMS,
    RETRY_OF,
    RUN_ID,
    VARIANT,
    WORKER,
)
from losslab.search.store.cache import AttrState, ResultsCache
from losslab.search.store.claims import Claims, FileClaims, SqlClaims
from losslab.search.store.entries import counted, record_of
from losslab.search.store.entry_hook import EntryHook
from losslab.search.store.ledger import Reclaimed, StudyMismatch, StudyStore
from losslab.search.store.reruns import ladder_positions, owed_reruns, reclaim_dead, requeue
from losslab.search.store.results_table import Results, open_results
from losslab.search.store.storage import journal_path, open_storage
from losslab.search.workers import Heartbeat, WorkerSettings, is_stale, worker_id
from losslab.training import Hook

__all__ = ["FAILURE", "HEARTBEAT", "INTERRUPTED", "WORKER", "OptunaStudyStore"]


class OptunaStudyStore(StudyStore):
    """The :class:`StudyStore` of ``ledger.py`` on an Optuna storage (module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        study_name: str,
        fingerprint: str,
        source: str = "",
        workers: WorkerSettings | None = None,
        metric_name: str = "objective",
    ):
        self.url, self.study_name = url, study_name
        self.metric_name = metric_name  # the objective's name in optuna-dashboard
        self.fingerprint, self.source = fingerprint, source
        self.workers = workers or WorkerSettings()
        self.stale_after = self.workers.stale_after
        self.claims: Claims | None = None
        self.results: Results | None = None  # the evaluation cache's (results_table.py)
        self.study: optuna.Study | None = None
        self.storage: Any = None
        self.reclaimed: list[Reclaimed] = []
        self._held: dict[int, optuna.Trial] = {}  # entries this worker holds (heartbeats)
        self._beaten: dict[int, float] = {}  # when each held entry's heartbeat was last written
        self._linked: dict[int, str] = {}  # the run each held entry links (link_run)

    # -- opening ---------------------------------------------------------------------------

    def open(self, *, resume: bool, seed: int) -> int:
        storage = open_storage(self.url, retry_seconds=self.workers.retry_seconds)
        exists = self.study_name in {s.study_name for s in optuna.get_all_study_summaries(storage)}
        if resume and not exists:
            raise ValueError(f"no study '{self.study_name}' to resume in {self.url}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name=self.study_name, storage=storage, direction="maximize", load_if_exists=True
        )
        with warnings.catch_warnings():  # set_metric_names is experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if study.metric_names != [self.metric_name]:
                study.set_metric_names([self.metric_name])
        self._attach(study, storage, write=True)
        study.set_user_attr(ALIVE + worker_id(), time.time())
        self.reclaimed = self._reclaim(study, storage)
        worker_seed = self._worker_seed(study, seed)
        study.sampler = optuna.samplers.RandomSampler(seed=worker_seed)
        return worker_seed

    def load(self) -> None:
        """Open an existing study to read it (``losslab show``, ``report``): nothing is written,
        no worker registered, nothing reclaimed.

        Raises:
            ValueError: no study of this name in the storage (the message lists those there),
                or one with another configuration (``StudyMismatch``).
        """
        storage = open_storage(self.url, retry_seconds=self.workers.retry_seconds)
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage))
        if self.study_name not in names:
            there = ", ".join(names) if names else "none"
            raise ValueError(
                f"no study '{self.study_name}' in the storage {self.url} (studies there: {there})"
            )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=self.study_name, storage=storage)
        self._attach(study, storage, write=False)

    def _attach(self, study: optuna.Study, storage: Any, *, write: bool) -> None:
        """Check the study's configuration (recorded on a new study when ``write``) and take
        its claims and results (their table or folder created when ``write``)."""
        known = study.user_attrs.get("losslab.fingerprint")
        if known is None and write:
            study.set_user_attr("losslab.fingerprint", self.fingerprint)
            study.set_user_attr("losslab.config", self.source)
        elif known is not None and known != self.fingerprint:
            raise StudyMismatch(
                f"the storage {self.url} already holds a study '{self.study_name}' with a "
                "different configuration (space, data, training, fidelity, objective, backend "
                "or seed); give this one another 'study' name"
            )
        self.study, self.storage = study, storage
        self.claims = self._claims(study, storage)
        self.results = open_results(storage, self.url, self.study_name, self.workers, create=write)

    def _worker_seed(self, study: optuna.Study, seed: int) -> int:
        """Each worker registers itself (``losslab.worker.<host:pid>`` = time): the earliest,
        on a study with no entries yet, takes ``seed`` (so one worker reproduces a study
        exactly); a later one, or a resumed study, derives a seed of its own."""
        me = worker_id()
        study.set_user_attr(f"losslab.worker.{me}", time.time())
        registered = sorted(
            (when, name[len("losslab.worker.") :])
            for name, when in study.user_attrs.items()
            if name.startswith("losslab.worker.")
        )
        if not study.trials and registered[0][1] == me:
            return seed
        salt = int(hashlib.sha256(me.encode()).hexdigest()[:8], 16)
        return (seed + 7919 * len(study.trials) + salt) % 2**32

    def _claims(self, study: optuna.Study, storage: Any) -> Claims:
        rdb = getattr(storage, "rdb", None)
        if rdb is not None:
            return SqlClaims(rdb.engine, self.study_name, self.workers.retry_seconds)
        return FileClaims(study, f"{journal_path(self.url)}.claims.lock")

    def reclaim(self) -> list[Reclaimed]:
        """Reclaim the entries of workers that died since :meth:`open` (called as the study
        goes on, so that a live worker picks up a dead one's trial)."""
        found = self._reclaim(self.study, self.storage)
        self.reclaimed.extend(found)
        return found

    def _reclaim(self, study: optuna.Study, storage: Any) -> list[Reclaimed]:
        return reclaim_dead(study, storage, self.stale_after)

    # -- liveness ----------------------------------------------------------------------------

    def beat(self) -> None:
        """Refresh this worker's heartbeat and that of every entry it holds."""
        now = time.time()
        self.study.set_user_attr(ALIVE + worker_id(), now)
        for trial in list(self._held.values()):
            with contextlib.suppress(RuntimeError, ValueError):  # finished meanwhile
                trial.set_user_attr(HEARTBEAT, now)
                self._beaten[trial.number] = now

    def _epoch_beat(self, trial: optuna.Trial) -> None:
        """An epoch's heartbeat of ``trial``, written only when no beat has refreshed it for
        ``workers.interval`` (the heartbeat thread's, or an earlier epoch's): it is as fresh as
        the thread keeps it, and never older than that when the thread is held up."""
        now = time.time()
        if now - self._beaten.get(trial.number, -math.inf) >= self.workers.interval:
            trial.set_user_attr(HEARTBEAT, now)
            self._beaten[trial.number] = now

    def heartbeat(self) -> Heartbeat:
        """A context in which a background thread keeps this worker's entries alive."""
        return Heartbeat(self.beat, self.workers.interval)

    def holder_stale(self, holder: str, attrs: dict[str, Any]) -> bool:
        """Whether the worker ``holder`` (of a claim) is gone, by its process or heartbeat."""
        return is_stale(holder, attrs.get(ALIVE + holder), self.stale_after)

    def queued(self) -> int:
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def running_elsewhere(self) -> int:
        """Entries RUNNING in other workers (they may still need reclaiming)."""
        mine = set(self._held)
        return sum(
            t.number not in mine
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        )

    # -- what backends and the loop use ------------------------------------------------------

    @property
    def cache(self) -> EvaluationCache:
        return ResultsCache(self)

    def state(self, namespace: str) -> BackendState:
        return AttrState(self, namespace)

    def reserve(self, count: int) -> list[Slot]:
        slots = []
        for _ in range(count):
            trial = self.study.ask()
            trial.set_user_attr(WORKER, worker_id())  # its heartbeat: its start (reruns.py)
            self._beaten[trial.number] = time.time()
            attrs = trial.user_attrs
            retry = None
            if CANDIDATE in attrs:  # an interrupted evaluation, queued to run again
                place = attrs.get(LADDER, {})
                retry = Proposal(
                    Candidate.from_dict(attrs[CANDIDATE]),
                    dict(attrs.get(OVERRIDES, {})),
                    dict(attrs.get(PARAMS, {})),
                    variant=dict(attrs.get(VARIANT, {})),
                    rung=place.get("rung", 0),
                    seed=place.get("seed", 0),
                    root=place.get("root"),
                )
            self._held[trial.number] = trial
            slots.append(Slot(trial.number, retry, trial))
        return slots

    def within_budget(self, slots: list[Slot], limit: int) -> list[Slot]:
        """Keep the slots among the first ``limit`` entries that count (finished or running);
        a slot beyond them (workers reserving at once) is given back, not counted.

        An interrupted evaluation still owed a rerun (queued, or failed by a reclaim that has
        not queued it yet) keeps its place: a fresh slot counts it, so a reservation that
        races a reclaim never takes the place of the dead worker's proposal."""
        trials = self.study.get_trials(deepcopy=False)
        held = [t.number for t in trials if counted(t) or t.state == TrialState.RUNNING]
        owed = owed_reruns(trials)
        kept = []
        for slot in slots:
            ahead = sum(n <= slot.number for n in held)
            if slot.retry is None:
                ahead += len(owed)
            if ahead <= limit:
                kept.append(slot)
            else:
                self.interrupt(slot, "over the budget: other workers reserved the last entries")
        return kept

    @property
    def native(self) -> optuna.Study:
        return self.study

    def start(self, slot: Slot, proposal: Proposal) -> None:
        trial = slot.native
        if proposal.overrides:  # none: read as {} (``_record``, ``reserve``, ``requeue``)
            trial.set_user_attr(OVERRIDES, dict(proposal.overrides))
        if proposal.params and not trial.params:  # a backend that does not draw in Optuna
            trial.set_user_attr(PARAMS, dict(proposal.params))
        if proposal.variant:
            trial.set_user_attr(VARIANT, dict(proposal.variant))
        if proposal.on_ladder:
            place = {"rung": proposal.rung, "root": proposal.root, "seed": proposal.seed}
            trial.set_user_attr(LADDER, place)
        if proposal.candidate is not None:  # last: with it, the whole proposal is recorded
            trial.set_user_attr(CANDIDATE, proposal.candidate.to_dict())

    def ladder_taken(self) -> set[tuple[int, int, int]]:
        """The ladder positions ``(rung, root, seed)`` held by an entry that is running,
        queued, or owed a rerun (``ladder.py``: no position is evaluated twice)."""
        return ladder_positions(self.study.get_trials(deepcopy=False))

    def link_run(self, slot: Slot, run_id: str) -> None:
        """Link the MLflow run to the entry as soon as it exists (found again after a crash)."""
        slot.native.set_user_attr(RUN_ID, run_id)
        self._linked[slot.number] = run_id

    def epoch_hook(self, slot: Slot, objective: Objective) -> Hook:
        report = LADDER not in slot.native.user_attrs
        return EntryHook(slot.native, objective, self._epoch_beat, report=report)

    def finish(self, slot: Slot, evaluation: Evaluation | None, reason: str = "") -> TrialRecord:
        trial, study = slot.native, self.study
        linked = self._release(slot.number)
        if evaluation is None:
            return self._fail(trial, reason)
        result = evaluation.result
        trial.set_user_attr("losslab.eval_key", evaluation.key)
        if evaluation.run_id != linked:  # a cache hit's run, or none linked yet
            trial.set_user_attr(RUN_ID, evaluation.run_id)
        if evaluation.cached:
            # The result of this entry's own interrupted attempt (killed after its result was
            # cached) is no other evaluation's: the run is this entry's.
            if evaluation.origin != f"trial {trial.user_attrs.get(RETRY_OF)}":
                trial.set_user_attr("losslab.cached_from", evaluation.origin)
            reported = self._frozen(trial).intermediate_values
            on_ladder = LADDER in trial.user_attrs
            for epoch, value in evaluation.curve.items():  # the same curve as the original
                if epoch not in reported and not on_ladder:
                    trial.report(value, epoch)
        if result.status == "pruned":
            trial.set_user_attr(FAILURE, result.reason)
            study.tell(trial, state=TrialState.PRUNED)
        elif result.status == "ok" and not math.isnan(evaluation.value):
            study.tell(trial, evaluation.value)
        else:
            return self._fail(trial, result.reason or "no validation score")
        return record_of(self._frozen(trial))

    def _fail(self, trial: optuna.Trial, reason: str) -> TrialRecord:
        trial.set_user_attr(FAILURE, reason)
        self.study.tell(trial, state=TrialState.FAIL)
        return record_of(self._frozen(trial))

    def _frozen(self, trial: optuna.Trial) -> FrozenTrial:
        """The entry as stored (one read of it, not of the whole study)."""
        return self.storage.get_trial(trial._trial_id)

    def _release(self, number: int) -> str | None:
        """Stop holding the entry ``number``; the run it linked, if any."""
        self._held.pop(number, None)
        self._beaten.pop(number, None)
        return self._linked.pop(number, None)

    def interrupt(self, slot: Slot, why: str, proposal: Proposal | None = None) -> None:
        trial = slot.native
        self._release(slot.number)
        try:
            trial.set_user_attr(INTERRUPTED, why)
            self.study.tell(trial, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # already finished (reclaimed by another worker)
            return
        attrs = dict(trial.user_attrs)
        if proposal is not None and proposal.candidate is not None:
            attrs.setdefault(CANDIDATE, proposal.candidate.to_dict())
            attrs.setdefault(OVERRIDES, dict(proposal.overrides))
            if proposal.variant:
                attrs.setdefault(VARIANT, dict(proposal.variant))
        requeue(self.study, trial.number, dict(trial.params), attrs)

    # -- reading the ledger ------------------------------------------------------------------

    def used(self) -> int:
        trials = self.study.get_trials(deepcopy=False)
        return sum(counted(t) or t.state == TrialState.RUNNING for t in trials)

    def records(self) -> list[TrialRecord]:
        return [record_of(t) for t in self.study.get_trials(deepcopy=False) if counted(t)]

    def interrupted(self) -> list[int]:
        return [
            t.number for t in self.study.get_trials(deepcopy=False) if INTERRUPTED in t.user_attrs
        ]
