"""Storage URLs: PostgreSQL's forms, a missing driver, a storage unreachable for a while."""

from __future__ import annotations

import contextlib
import importlib.util
import sqlite3

import optuna
import pytest
from sqlalchemy.exc import OperationalError

from losslab.search.store.retrying_storage import RetryingStorage, is_connection_error
from losslab.search.store.storage import database_url, open_storage


@pytest.mark.parametrize(
    "url",
    ["postgresql://u@h:5432/db", "postgres://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"],
)
def test_every_postgres_form_goes_through_psycopg_3(url):
    assert database_url(url) == "postgresql+psycopg://u@h:5432/db"


def test_other_urls_are_left_alone():
    assert database_url("sqlite:///studies.db") == "sqlite:///studies.db"


def test_a_missing_driver_names_the_extra_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name)
    )
    with pytest.raises(ValueError, match=r'pip install "losslab\[postgres\]"'):
        open_storage("postgresql://user@host/db")


def _dropped() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


class _Flaky:
    """A storage whose first ``failures`` calls of ``name`` find no server."""

    def __init__(self, inner, name: str, failures: int, error=_dropped):
        self.inner, self.name, self.failures, self.error = inner, name, failures, error

    def __getattr__(self, attr):
        method = getattr(self.inner, attr)
        if attr != self.name:
            return method

        def flaky(*args, **kwargs):
            if self.failures > 0:
                self.failures -= 1
                raise self.error()
            return method(*args, **kwargs)

        return flaky


def test_a_call_that_finds_no_server_is_retried_until_it_does():
    naps = []
    flaky = _Flaky(optuna.storages.InMemoryStorage(), "create_new_trial", failures=3)
    storage = RetryingStorage(flaky, retry_seconds=60, sleep=naps.append)
    study = optuna.create_study(storage=storage, direction="maximize")
    study.tell(study.ask(), 1.0)
    assert [t.value for t in study.trials] == [1.0]
    assert storage.waited == 3 and naps == [0.25, 0.5, 1.0]  # exponential backoff


def test_a_sqlite_storage_commits_through_a_write_ahead_log(tmp_path):
    open_storage(f"sqlite:///{tmp_path / 'studies.db'}", retry_seconds=1.0)
    with contextlib.closing(sqlite3.connect(tmp_path / "studies.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_other_errors_are_not_retried():
    flaky = _Flaky(optuna.storages.InMemoryStorage(), "create_new_trial", 1, lambda: KeyError("x"))
    storage = RetryingStorage(flaky, retry_seconds=60, sleep=lambda s: None)
    study = optuna.create_study(storage=storage)
    with pytest.raises(KeyError):
        study.ask()
    assert storage.waited == 0


def test_a_server_gone_for_longer_than_the_retry_raises():
    flaky = _Flaky(optuna.storages.InMemoryStorage(), "create_new_trial", failures=10**6)
    storage = RetryingStorage(flaky, retry_seconds=0.01, sleep=lambda s: None)
    study = optuna.create_study(storage=storage)
    with pytest.raises(OperationalError):
        study.ask()


def test_a_finish_whose_commit_went_through_before_the_drop_is_not_an_error():
    inner = optuna.storages.InMemoryStorage()
    storage = RetryingStorage(inner, retry_seconds=60, sleep=lambda s: None)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    real = inner.set_trial_state_values

    def commit_then_drop(*args, **kwargs):
        real(*args, **kwargs)  # committed, but the answer is lost with the connection
        inner.set_trial_state_values = real
        raise _dropped()

    inner.set_trial_state_values = commit_then_drop
    study.tell(trial, 2.0)
    assert study.trials[0].value == 2.0


def test_connection_errors_are_found_through_their_causes():
    try:
        try:
            raise _dropped()
        except OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("commit failed") from exc
    except optuna.exceptions.StorageInternalError as wrapped:
        assert is_connection_error(wrapped)
    assert not is_connection_error(ValueError("bad value"))
