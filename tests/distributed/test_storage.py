"""The study storage on a real PostgreSQL: URL forms, and a server that goes away for a while."""

from __future__ import annotations

import threading
import time

import optuna
import pytest

from losslab.search.store.storage import open_storage

pytestmark = pytest.mark.slow


def test_every_url_form_opens_the_same_database(database):
    plain = database
    forms = [
        plain,
        plain.replace("postgresql://", "postgresql+psycopg://", 1),
        plain.replace("postgresql://", "postgres://", 1),
    ]
    optuna.create_study(study_name="s", storage=open_storage(forms[0])).set_user_attr("a", 1)
    for url in forms[1:]:
        study = optuna.load_study(study_name="s", storage=open_storage(url))
        assert study.user_attrs == {"a": 1}


def test_a_worker_waits_for_a_database_that_restarts(postgres, database):
    storage = open_storage(database, retry_seconds=60)
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.tell(study.ask(), 1.0)
    postgres.stop()
    restart = threading.Timer(4.0, postgres.start)
    restart.start()
    try:
        started = time.monotonic()
        trial = study.ask()  # while the server is down: retried until it is back
        study.tell(trial, 2.0)
        waited = time.monotonic() - started
    finally:
        restart.join()
    assert storage.waited > 0
    assert waited > 3.0
    assert [t.value for t in study.trials] == [1.0, 2.0]


def test_a_database_down_for_longer_than_the_retry_fails_clearly(postgres, database):
    storage = open_storage(database, retry_seconds=60)
    optuna.create_study(study_name="s", storage=storage)
    postgres.stop()
    try:
        with pytest.raises(ValueError, match="unreachable"):
            open_storage(database, retry_seconds=2)
    finally:
        postgres.start()
