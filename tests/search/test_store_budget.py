"""The study store's budget: a reclaimed evaluation keeps its place against fresh reservations."""

from __future__ import annotations

from optuna.trial import TrialState

from losslab.candidate import Candidate
from losslab.search.backend import Proposal
from losslab.search.store import open_store
from losslab.search.store.optuna_store import INTERRUPTED, RETRY_OF, OptunaStudyStore
from losslab.search.store.reruns import requeue


def _store(tmp_path) -> OptunaStudyStore:
    store = open_store(f"sqlite:///{tmp_path / 'study.db'}", study_name="s", fingerprint="f")
    store.open(resume=False, seed=0)
    return store


def _reserve_one(store: OptunaStudyStore, limit: int):
    return store.within_budget(store.reserve(1), limit)


def _fail_as_a_reclaim_does(store: OptunaStudyStore, number: int) -> None:
    """What ``_reclaim`` writes before it queues the entry again (a dead worker's trial)."""
    storage, study = store.storage, store.study
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    storage.set_trial_user_attr(trial_id, INTERRUPTED, "worker elsewhere:1 stopped")
    storage.set_trial_state_values(trial_id, TrialState.FAIL)


def test_a_fresh_reservation_racing_a_reclaim_does_not_take_the_dead_workers_place(tmp_path):
    limit = 3
    store = _store(tmp_path)
    slots = store.reserve(limit)
    candidates = [Candidate.from_loss(name) for name in ("dice", "ce", "focal")]
    for slot, candidate in zip(slots, candidates):
        store.start(slot, Proposal(candidate, {}, {}))
    for slot in slots[:2]:
        store.study.tell(slot.native, 0.5)
    _fail_as_a_reclaim_does(store, slots[2].number)

    # A worker reserves between the reclaim's fail and its re-queue: the place is owed.
    assert _reserve_one(store, limit) == []
    requeue(store.study, slots[2].number, {}, store.study.trials[2].user_attrs)
    # Queued now: a fresh reservation still yields to it, the retry itself is kept.
    (retry,) = _reserve_one(store, limit)
    assert retry.retry is not None and retry.retry.candidate.key == candidates[2].key
    assert store.study.trials[retry.number].user_attrs[RETRY_OF] == slots[2].number
    assert _reserve_one(store, limit) == []


def test_fresh_reservations_fill_the_budget_when_nothing_is_owed(tmp_path):
    limit = 2
    store = _store(tmp_path)
    kept = _reserve_one(store, limit) + _reserve_one(store, limit)
    assert [s.number for s in kept] == [0, 1]
    assert _reserve_one(store, limit) == []  # the third is over the budget
    given_back = store.study.trials[2]
    assert (
        given_back.state == TrialState.FAIL
        and "over the budget" in given_back.user_attrs[INTERRUPTED]
    )
    # A reservation given back (nothing proposed yet) is owed nothing and queues nothing.
    assert store.queued() == 0
