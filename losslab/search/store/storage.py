"""Optuna storages: which one a study uses, opened from a URL.

A storage is any Optuna RDB URL (``sqlite:///studies.db``, ``postgresql://user@host/db``) or a
journal file (``journal:studies.log``, or any path ending in ``.log``), which many processes on one
machine can share. The default (``ledger.default_storage_url``) is a journal file next to the
MLflow store.

PostgreSQL, for workers on many machines, needs a driver: ``pip install "losslab[postgres]"``
installs psycopg 3. Both ``postgresql://`` (which SQLAlchemy maps to a driver that depends on its
version) and ``postgresql+psycopg://`` are accepted, and ``postgres://`` too; all three go
through psycopg 3. ``postgresql+psycopg2://`` is left as given, for those who installed
psycopg2 themselves. A SQLite file is put in write-ahead-log mode (as the MLflow store is:
``tracking/sqlite_store.py``): each of the study's commits syncs one file once instead of a
rollback journal and the database, as durable (``synchronous`` stays ``FULL``); its workers must
be on one machine, as they must for any SQLite storage. An RDB storage is wrapped in :class:`~losslab.search.store.retrying_storage.
RetryingStorage`, so a database that is unreachable for a moment makes a worker wait, not fail.
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

from optuna.storages import BaseStorage, JournalStorage, RDBStorage, get_storage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from losslab.search.store.retrying_storage import RetryingStorage, is_connection_error

__all__ = ["POSTGRES_EXTRA", "database_url", "journal_path", "open_storage"]

POSTGRES_EXTRA = 'pip install "losslab[postgres]"'
_DRIVERS = {"psycopg": "psycopg", "psycopg2": "psycopg2", "pg8000": "pg8000", "asyncpg": "asyncpg"}


def journal_path(url: str) -> str | None:
    """The file of a journal storage URL (``None`` for a database URL)."""
    if url.startswith("journal:"):
        return url[len("journal:") :].removeprefix("//")
    if "://" not in url and url.endswith((".log", ".journal")):
        return url
    return None


def database_url(url: str) -> str:
    """``url`` with PostgreSQL's scheme made explicit (module docstring).

    Raises:
        ValueError: the URL's PostgreSQL driver is not installed, naming what to install.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        return url
    driver = scheme.partition("+")[2] or "psycopg"
    module = _DRIVERS.get(driver, driver)
    if importlib.util.find_spec(module) is None:
        hint = POSTGRES_EXTRA if driver == "psycopg" else f"pip install {module}"
        raise ValueError(
            f"storage {url!r} needs the PostgreSQL driver {module!r}, which is not installed: "
            f"{hint}"
        )
    return f"postgresql+{driver}://{rest}"


def open_storage(url: str, *, retry_seconds: float = 120.0) -> BaseStorage:
    """An Optuna storage from a URL (see the module docstring).

    ``retry_seconds``: how long a database storage waits for an unreachable server, when
    opened and on every later call.

    Raises:
        ValueError: a URL Optuna cannot open, or a driver missing, named.
    """
    path = journal_path(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    if "://" not in url:
        raise ValueError(
            f"storage {url!r} is neither a database URL (sqlite:///..., postgresql://...) "
            "nor a journal file (journal:PATH or PATH.log)"
        )
    full = database_url(url)
    opener = RetryingStorage(_Opener(full), retry_seconds)
    try:
        rdb = opener._call("open")
    except Exception as exc:  # sqlalchemy raises many types; name the URL
        why = "unreachable" if is_connection_error(exc) else "cannot open"
        raise ValueError(f"storage {url!r}: {why}: {type(exc).__name__}: {exc}") from None
    storage = RetryingStorage(get_storage(rdb), retry_seconds)
    storage.rdb = rdb  # its engine holds the claims table (``claims.py``)
    return storage


class _Opener:
    """Creates the RDB storage (its engine, and its tables on a fresh database): retried like
    any other call. On PostgreSQL, workers that start together on a fresh database would all
    create Optuna's tables at once and all but one fail on the race; an advisory lock makes
    them take turns."""

    _LOCK = 0x10551AB  # the advisory lock's key: any constant shared by every worker

    def __init__(self, url: str):
        self.url = url

    def open(self) -> RDBStorage:
        if self.url.startswith("sqlite"):
            return _write_ahead(RDBStorage(self.url))
        if not self.url.startswith("postgresql"):
            return RDBStorage(self.url)
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(sqlalchemy.text(f"SELECT pg_advisory_lock({self._LOCK})"))
                try:
                    return RDBStorage(self.url, engine_kwargs={"pool_pre_ping": True})
                finally:
                    connection.execute(sqlalchemy.text(f"SELECT pg_advisory_unlock({self._LOCK})"))
        finally:
            engine.dispose()


def _write_ahead(rdb: RDBStorage) -> RDBStorage:
    """``rdb``'s SQLite file in write-ahead-log mode (module docstring; the mode stays with the
    file). A file that cannot switch now (another process in a transaction) works as before."""
    import sqlalchemy

    with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError), rdb.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    return rdb
