"""Claims are a compare-and-set: of workers claiming one key at once, exactly one wins."""

from __future__ import annotations

import threading

import optuna
import pytest

from losslab.search.store.claims import FileClaims, SqlClaims
from losslab.search.store.storage import open_storage


def _race(claims, name, workers, stale=lambda holder: False):
    start, won = threading.Barrier(len(workers)), []

    def claim(me):
        start.wait()
        if claims.acquire(name, me, stale):
            won.append(me)

    threads = [threading.Thread(target=claim, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


@pytest.fixture(params=["sqlite", "journal"])
def claims(request, tmp_path):
    if request.param == "sqlite":
        storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
        optuna.create_study(study_name="s", storage=storage)
        return SqlClaims(storage.rdb.engine, "s")
    storage = open_storage(f"journal:{tmp_path / 'studies.log'}")
    study = optuna.create_study(study_name="s", storage=storage)
    return FileClaims(study, tmp_path / "studies.log.claims.lock")


def test_one_of_many_simultaneous_claims_wins(claims):
    workers = [f"node{i}:1" for i in range(8)]
    won = _race(claims, "key", workers)
    assert len(won) == 1 and claims.holder("key") == won[0]
    assert claims.acquire("key", won[0], lambda h: False)  # the holder may claim again
    loser = next(w for w in workers if w != won[0])
    assert not claims.acquire("key", loser, lambda h: False)


def test_the_claim_of_a_dead_worker_is_taken_over_by_exactly_one(claims):
    assert claims.acquire("key", "dead:1", lambda h: False)
    won = _race(claims, "key", [f"node{i}:1" for i in range(6)], stale=lambda h: h == "dead:1")
    assert len(won) == 1 and claims.holder("key") == won[0]


def test_claims_of_another_study_are_apart(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'studies.db'}")
    first, second = (SqlClaims(storage.rdb.engine, name) for name in ("a", "b"))
    assert first.acquire("key", "node0:1", lambda h: False)
    assert second.acquire("key", "node1:1", lambda h: False)
    assert first.holder("key") == "node0:1" and second.holder("key") == "node1:1"
