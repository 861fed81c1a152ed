"""The Optuna backend: TPE (or random) over the study's space, pruning on per-epoch objectives.

Ask-and-tell: each step asks a trial, draws a candidate from the conditional space, evaluates it
(a trainer hook reports the per-epoch validation objective, refreshes the trial's heartbeat and
raises ``StopTraining`` when the pruner says so) and tells Optuna the outcome: COMPLETE with the
objective, PRUNED, or FAIL with the reason in the trial's ``losslab.failure`` attribute.

The study's storage also holds the cache of evaluations (study attributes ``losslab.eval.<key>``),
so a candidate proposed twice, by this worker or another, or after a resume, trains once.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import optuna
from optuna.trial import TrialState

from losslab.candidate import Candidate
from losslab.search.backend import EvaluateFn, SearchBackend, TrialRecord
from losslab.search.deadline import TimeUp
from losslab.search.evaluator import CachedEvaluation, EvaluationCache, worker_id
from losslab.search.objective import Objective
from losslab.search.optuna_settings import check_settings, make_pruner, make_sampler
from losslab.search.space import SearchSpace, SpaceError
from losslab.search.storage import (
    HEARTBEAT,
    INTERRUPTED,
    STALE_AFTER,
    WORKER,
    is_stale,
    open_storage,
    reclaim_stale_trials,
)
from losslab.training import EpochRecord, Hook, Result, StopTraining

__all__ = ["OptunaBackend", "StudyMismatch", "make_pruner", "make_sampler"]

FAILURE = "losslab.failure"
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


class StudyMismatch(ValueError):
    """The storage holds a study of this name with a different configuration."""


class _OptunaCache(EvaluationCache):
    """Evaluations in the study's attributes: shared by every worker and every resume."""

    def __init__(self, study: optuna.Study, stale_after: float = STALE_AFTER, poll: float = 0.5):
        self.study, self.stale_after, self.poll = study, stale_after, poll

    def get(self, key: str) -> CachedEvaluation | None:
        entry = self.study.user_attrs.get(f"losslab.eval.{key}")
        if entry is None:
            return None
        return CachedEvaluation(Result.from_dict(entry["result"]), entry["run_id"], entry["origin"])

    def put(self, key: str, entry: CachedEvaluation) -> None:
        self.study.set_user_attr(
            f"losslab.eval.{key}",
            {"result": entry.result.to_dict(), "run_id": entry.run_id, "origin": entry.origin},
        )

    def claim(self, key: str) -> bool:
        """Write ``losslab.claim.<key>`` = this worker and read it back: of workers claiming at
        once, the last writer trains and the others wait for its result."""
        name, me = f"losslab.claim.{key}", worker_id()
        holder = self.study.user_attrs.get(name)
        if holder and holder != me and not is_stale(holder, None, self.stale_after):
            return False
        self.study.set_user_attr(name, me)
        return self.study.user_attrs.get(name) == me

    def wait(self, key: str) -> CachedEvaluation | None:
        name = f"losslab.claim.{key}"
        deadline = time.monotonic() + self.stale_after
        while time.monotonic() < deadline:
            hit = self.get(key)
            if hit is not None:
                return hit
            holder = self.study.user_attrs.get(name, "")
            if holder == worker_id() or is_stale(holder, None, self.stale_after):
                return None  # the other worker died (or gave the key back): train it here
            time.sleep(self.poll)
        return None


class _TrialHook(Hook):
    """Reports the epoch's objective, refreshes the heartbeat, prunes when told to."""

    def __init__(self, trial: optuna.Trial, objective: Objective, pruning: bool):
        self.trial, self.objective, self.pruning = trial, objective, pruning

    def on_epoch_end(self, state: Any, record: EpochRecord) -> None:
        self.trial.set_user_attr(HEARTBEAT, time.time())
        value = self.objective.of_epoch(record)
        if math.isnan(value):
            return
        self.trial.report(value, record.epoch)
        if self.pruning and self.trial.should_prune():
            raise StopTraining(f"pruned at epoch {record.epoch} (objective {value:.4f})")


class OptunaBackend(SearchBackend):
    """Optuna over the study's space (see the module docstring)."""

    name: ClassVar[str] = "optuna"

    def __init__(
        self,
        *,
        study_name: str,
        storage_url: str,
        space: SearchSpace,
        objective: Objective,
        settings: Mapping[str, Any],
        seed: int,
        epochs: int,
        fingerprint: str,
        source: str = "",
    ):
        self.study_name, self.storage_url = study_name, storage_url
        self.space, self.objective = space, objective
        self.settings, self.seed, self.epochs = dict(settings), seed, epochs
        self.fingerprint, self.source = fingerprint, source
        self.study: optuna.Study | None = None
        self.reclaimed: list[int] = []
        self.reclaimed_runs: list[str] = []

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], *, epochs: int = 1) -> None:
        check_settings(settings, epochs)

    def open(self, *, resume: bool) -> EvaluationCache:
        storage = open_storage(self.storage_url)
        exists = self.study_name in {s.study_name for s in optuna.get_all_study_summaries(storage)}
        if resume and not exists:
            raise ValueError(f"no study '{self.study_name}' to resume in {self.storage_url}")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        probe = optuna.create_study(
            study_name=self.study_name, storage=storage, direction="maximize", load_if_exists=True
        )
        known = probe.user_attrs.get("losslab.fingerprint")
        if known is None:
            probe.set_user_attr("losslab.fingerprint", self.fingerprint)
            probe.set_user_attr("losslab.config", self.source)
        elif known != self.fingerprint:
            raise StudyMismatch(
                f"the storage {self.storage_url} already holds a study '{self.study_name}' with a "
                "different configuration (space, data, training, fidelity, objective or seed); "
                "give this one another 'study' name"
            )
        stale = reclaim_stale_trials(probe, storage)
        self.reclaimed = [t.number for t in stale]
        self.reclaimed_runs = [
            t.user_attrs["losslab.mlflow_run_id"]
            for t in stale
            if t.user_attrs.get("losslab.mlflow_run_id")
        ]
        seed = self._sampler_seed(probe)
        self.study = optuna.load_study(
            study_name=self.study_name,
            storage=storage,
            sampler=make_sampler(self.settings, seed),
            pruner=make_pruner(self.settings, self.epochs),
        )
        self._storage = storage
        return _OptunaCache(self.study)

    def _sampler_seed(self, study: optuna.Study) -> int:
        """The study's seed for the worker that starts it; another seed for every other worker.

        Workers that start together must not draw the same candidates. Each registers itself
        (study attribute ``losslab.worker.<host:pid>`` = time) and then reads the registrations:
        the earliest, on a study with no trials yet, takes the configured seed (so one worker
        reproduces a study exactly); a later one, or a resumed study, derives a seed of its own.
        """
        me = worker_id()
        study.set_user_attr(f"losslab.worker.{me}", time.time())
        registered = sorted(
            (when, name[len("losslab.worker.") :])
            for name, when in study.user_attrs.items()
            if name.startswith("losslab.worker.")
        )
        if not study.trials and registered[0][1] == me:
            return self.seed
        salt = int(hashlib.sha256(me.encode()).hexdigest()[:8], 16)
        return (self.seed + 7919 * len(study.trials) + salt) % 2**32

    def _counted(self, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.state in _FINISHED and INTERRUPTED not in trial.user_attrs

    def used(self) -> int:
        trials = self.study.get_trials(deepcopy=False)
        return sum(self._counted(t) or t.state == TrialState.RUNNING for t in trials)

    def step(self, evaluate: EvaluateFn) -> TrialRecord:
        study = self.study
        trial = study.ask()
        trial.set_user_attr(WORKER, worker_id())
        trial.set_user_attr(HEARTBEAT, time.time())
        try:
            candidate, overrides = self.space.sample(trial)
        except (SpaceError, ValueError) as exc:
            return self._fail(trial, f"invalid combination: {exc}")
        trial.set_user_attr("losslab.candidate", candidate.to_dict())
        trial.set_user_attr("losslab.overrides", overrides)
        pruning = not isinstance(study.pruner, optuna.pruners.NopPruner)
        try:
            evaluation = evaluate(
                candidate,
                overrides=overrides,
                hooks=[_TrialHook(trial, self.objective, pruning)],
                tags={"losslab.role": "trial", "optuna.trial": str(trial.number)},
                origin=f"trial {trial.number}",
                on_run=lambda run_id: trial.set_user_attr("losslab.mlflow_run_id", run_id),
            )
        except KeyboardInterrupt as stop:  # Ctrl-C, a signal, or the time budget (TimeUp)
            why = str(stop) if isinstance(stop, TimeUp) else "interrupted by the user or a signal"
            trial.set_user_attr(INTERRUPTED, why)
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"losslab.retry_of": trial.number})
            raise
        result = evaluation.result
        trial.set_user_attr("losslab.eval_key", evaluation.key)
        trial.set_user_attr("losslab.mlflow_run_id", evaluation.run_id)
        if evaluation.cached:
            trial.set_user_attr("losslab.cached_from", evaluation.origin)
            for record in result.history:  # the pruner sees the same curve as the original
                value = self.objective.of_epoch(record)
                if not math.isnan(value):
                    trial.report(value, record.epoch)
        if result.status == "pruned":
            trial.set_user_attr(FAILURE, result.reason)
            study.tell(trial, state=TrialState.PRUNED)
        elif result.status == "ok" and not math.isnan(evaluation.value):
            study.tell(trial, evaluation.value)
        else:
            return self._fail(trial, result.reason or "no validation score")
        return self._record(study.get_trials(deepcopy=False)[trial.number])

    def _fail(self, trial: optuna.Trial, reason: str) -> TrialRecord:
        trial.set_user_attr(FAILURE, reason)
        self.study.tell(trial, state=TrialState.FAIL)
        return self._record(self.study.get_trials(deepcopy=False)[trial.number])

    def _record(self, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        attrs = trial.user_attrs
        status = {TrialState.COMPLETE: "ok", TrialState.PRUNED: "pruned"}.get(trial.state, "failed")
        value = trial.value if trial.state == TrialState.COMPLETE else math.nan
        if trial.state == TrialState.PRUNED and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        candidate = (
            Candidate.from_dict(attrs["losslab.candidate"])
            if "losslab.candidate" in attrs
            else None
        )
        return TrialRecord(
            number=trial.number,
            candidate=candidate,
            status=status,
            value=value if value is not None else math.nan,
            eval_key=attrs.get("losslab.eval_key", ""),
            run_id=attrs.get("losslab.mlflow_run_id"),
            reason=attrs.get(FAILURE, ""),
            cached_from=attrs.get("losslab.cached_from", ""),
            overrides=dict(attrs.get("losslab.overrides", {})),
            params=dict(trial.params),
        )

    def records(self) -> list[TrialRecord]:
        return [self._record(t) for t in self.study.get_trials(deepcopy=False) if self._counted(t)]

    def interrupted(self) -> list[int]:
        """Numbers of the trials cut short by a stopped worker (retried, not counted)."""
        return [
            t.number for t in self.study.get_trials(deepcopy=False) if INTERRUPTED in t.user_attrs
        ]
