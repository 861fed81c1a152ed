"""The file of a local SQLite store (MLflow's ``sqlite:///mlflow.db``): its lock and its creation.

Creating an MLflow store takes seconds (every table is created, then migrated). A process killed
meanwhile must not leave a half-made store that no later start can open, so the store is built
at a temporary name beside its file (``mlflow.db.creating-<pid>-<token>``) and renamed into
place once complete, all under an exclusive lock on ``mlflow.db.lock`` that serialises the first
connection of workers that start together. The next start removes what a killed creation left.
A store left half-made by an older version (tables, but neither an experiment nor a run) is
moved aside (``mlflow.db.half-made-<time>``) and made anew.

A store is kept in SQLite's write-ahead-log mode (:func:`use_wal`; ``mlflow.db-wal`` and
``mlflow.db-shm`` beside it while a process has it open): a commit then syncs one file once,
not a rollback journal and the database several times (about 4 ms against 16 ms each on the
development machine; MLflow commits a dozen times per evaluation). As durable: every commit
is synced before it returns (SQLite's ``synchronous`` stays ``FULL``), so neither a killed
process nor a power cut loses one. Every process that opens the store must be on its machine
(SQLite's rule for WAL; a shared store across machines is a server's job: ``http://``).

This module handles files only; ``tracking.py`` gives it the function that builds the tables.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote

__all__ = [
    "CREATING",
    "init_lock",
    "prepare_store",
    "sqlite_path",
    "unfinished_store",
    "use_wal",
]

logger = logging.getLogger(__name__)

CREATING = ".creating-"


def sqlite_path(uri: str) -> str | None:
    """The file of a local SQLite URI (``None`` for another URI or an in-memory database)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].partition("?")[0]
    return path if path and path != ":memory:" else None


@contextlib.contextmanager
def init_lock(path: str) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        yield
        return
    import fcntl

    lock = path + ".lock"
    os.makedirs(os.path.dirname(os.path.abspath(lock)), exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def unfinished_store(path: str) -> bool:
    """Whether the SQLite file at ``path`` is an MLflow store whose creation was cut short: no
    table at all, or tables ``experiments`` and ``runs`` both empty (MLflow adds its default
    experiment once every table is migrated). Anything else, an unreadable file included, is
    left alone."""
    try:
        address = f"file:{quote(os.path.abspath(path))}?mode=rw"
        with contextlib.closing(sqlite3.connect(address, uri=True)) as db:
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
            tables = {row[0] for row in db.execute(query)}
            if not tables:
                return True
            if not {"experiments", "runs"} <= tables:
                return False
            counts = [
                db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("experiments", "runs")
            ]
    except sqlite3.Error:
        return False
    return counts == [0, 0]


def prepare_store(path: str, build: Callable[[str], None]) -> bool:
    """Make sure a complete store is at ``path``; call under :func:`init_lock`.

    ``build(temporary)`` creates the store's tables in the file ``temporary``. Returns whether
    the store was (re)created.
    """
    for leftover in glob.glob(glob.escape(path) + CREATING + "*"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(leftover)
    if os.path.exists(path):
        if not unfinished_store(path):
            return False
        aside = f"{path}.half-made-{int(time.time())}"
        logger.warning("the store %s was left half-made: moved to %s, made anew", path, aside)
        for suffix in ("", "-journal", "-wal", "-shm"):  # the file and what SQLite keeps beside
            with contextlib.suppress(FileNotFoundError):
                os.replace(path + suffix, aside + suffix)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    temporary = f"{path}{CREATING}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    build(temporary)
    with open(temporary, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return True


def use_wal(path: str) -> bool:
    """Put the SQLite file ``path`` in write-ahead-log mode (module docstring), once: the mode
    stays with the file. ``False`` when it could not be (the file busy in a transaction of
    another process, read-only, not a database): it is left as it was, and works as before."""
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5.0)) as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return True
            return db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal"
    except sqlite3.Error:
        return False
