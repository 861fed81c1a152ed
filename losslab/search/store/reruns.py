"""Entries to run again: a dead worker's entries reclaimed and queued, and what is owed.

A worker that stops (killed, its machine gone) leaves RUNNING entries; a live worker fails them
as interrupted once their heartbeat (until its first beat, the entry's start) is older than
``stale_after`` and queues their draw again (a WAITING entry with ``losslab.retry_of``), so
nothing a backend proposed is lost. Until the rerun counts, its place is owed: fresh reservations yield to it (``owed_reruns``), and the
fidelity ladder does not offer its position again (``ladder_positions``).
"""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from losslab.search.store.attrs import (
    CANDIDATE,
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
from losslab.search.store.ledger import Reclaimed
from losslab.search.workers import is_stale

__all__ = ["ladder_positions", "owed_reruns", "reclaim_dead", "requeue"]


def reclaim_dead(study: optuna.Study, storage: Any, stale_after: float) -> list[Reclaimed]:
    """Fail the RUNNING entries of dead workers as interrupted and queue them again; an
    entry no worker ever took (a trial created twice by a retried write) is failed once
    it is older than ``stale_after``."""
    reclaimed = []
    study_id = storage.get_study_id_from_name(study.study_name)
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        worker = attrs.get(WORKER, "")
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        if worker:  # an entry's heartbeat is its start until its worker's first beat
            if not is_stale(worker, attrs.get(HEARTBEAT, started), stale_after):
                continue
            why = f"worker {worker} stopped"
        else:
            if now - started <= stale_after:
                continue
            why = "never taken by a worker"
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, INTERRUPTED, why)
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                continue
        except RuntimeError:  # another worker reclaimed it first (UpdateFinishedTrialError)
            continue
        requeue(study, trial.number, trial.params, attrs)
        reclaimed.append(Reclaimed(trial.number, attrs.get(RUN_ID)))
    return reclaimed


def requeue(
    study: optuna.Study, number: int, params: dict[str, Any], attrs: dict[str, Any]
) -> None:
    """Queue an interrupted entry's draw again (nothing a backend proposed is lost)."""
    if CANDIDATE not in attrs and not params:
        return  # reserved but never proposed: nothing to run again
    kept = {k: attrs[k] for k in (CANDIDATE, OVERRIDES, PARAMS, VARIANT, LADDER) if k in attrs}
    again = {RETRY_OF: number, **kept}
    study.enqueue_trial(params, user_attrs=again)


def owed_reruns(trials: list[FrozenTrial]) -> set[int]:
    """The entries still owed a rerun: queued ones (WAITING) and interrupted ones with a draw
    to run again that no later entry retries yet (a reclaim between failing and queueing)."""
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    owed = {t.number for t in trials if t.state == TrialState.WAITING and RETRY_OF in t.user_attrs}
    for trial in trials:
        attrs = trial.user_attrs
        if INTERRUPTED not in attrs or trial.number in retried or trial.state != TrialState.FAIL:
            continue
        if CANDIDATE in attrs or trial.params:
            owed.add(trial.number)
    return owed


def ladder_positions(trials: list[FrozenTrial]) -> set[tuple[int, int, int]]:
    """The fidelity ladder's positions ``(rung, root, seed)`` held by an entry that is
    running, queued, or owed a rerun."""
    owed = owed_reruns(trials)
    taken = set()
    for trial in trials:
        place = trial.user_attrs.get(LADDER)
        if place and (trial.state == TrialState.RUNNING or trial.number in owed):
            taken.add((place["rung"], place["root"], place["seed"]))
    return taken
