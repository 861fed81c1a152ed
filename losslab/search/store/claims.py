"""Claims: which worker holds a key (an evaluation to train, a GP individual to propose).

A claim must be a compare-and-set: of workers claiming one key at once, exactly one wins, however
slow each is between reading and writing. Optuna's storages offer no such operation, so:

- on a database (SQLite, PostgreSQL) a table of our own, ``losslab_claims``, keyed by study and
  name: a claim is an ``INSERT`` (the primary key lets one through), and taking over the claim of
  a dead worker is an ``UPDATE ... WHERE worker = <the dead one>`` (one update wins);
- on a journal file (workers on one machine) an exclusive file lock around reading and writing
  the claim in the study's attributes.

A claim's holder is taken for dead by ``stale(holder)`` (its process, or its heartbeat: see
``store.py``); the key is then claimed again.
"""

from __future__ import annotations

import fcntl
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from losslab.search.store.retrying_storage import with_retries

__all__ = ["Claims", "FileClaims", "SqlClaims"]


class Claims(ABC):
    @abstractmethod
    def acquire(self, name: str, me: str, stale: Callable[[str], bool]) -> bool:
        """Claim ``name`` for ``me``; ``False`` when a live worker (``not stale``) holds it."""

    @abstractmethod
    def holder(self, name: str) -> str | None:
        """The worker holding ``name`` (``None``: nobody)."""


class FileClaims(Claims):
    """Claims in the study's attributes, read and written under an exclusive file lock."""

    def __init__(self, study: Any, lock_path: str | Path):
        self.study, self.lock_path = study, Path(lock_path)

    def acquire(self, name: str, me: str, stale: Callable[[str], bool]) -> bool:
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                holder = self.study.user_attrs.get(name)
                if holder and holder != me and not stale(holder):
                    return False
                if holder != me:
                    self.study.set_user_attr(name, me)
                return True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def holder(self, name: str) -> str | None:
        return self.study.user_attrs.get(name)


class SqlClaims(Claims):
    """Claims in the table ``losslab_claims`` of the study's database (module docstring)."""

    def __init__(self, engine: Any, study_name: str, retry_seconds: float = 120.0):
        import sqlalchemy as sa

        self.engine, self.study_name, self.retry_seconds = engine, study_name, retry_seconds
        metadata = sa.MetaData()
        self.table = sa.Table(
            "losslab_claims",
            metadata,
            sa.Column("study", sa.String(512), primary_key=True),
            sa.Column("name", sa.String(512), primary_key=True),
            sa.Column("worker", sa.String(512), nullable=False),
        )
        try:
            with_retries(lambda: metadata.create_all(engine), retry_seconds)
        except sa.exc.DatabaseError:  # created by another worker at the same moment
            if not sa.inspect(engine).has_table("losslab_claims"):
                raise

    def acquire(self, name: str, me: str, stale: Callable[[str], bool]) -> bool:
        return with_retries(lambda: self._acquire(name, me, stale), self.retry_seconds)

    def _acquire(self, name: str, me: str, stale: Callable[[str], bool]) -> bool:
        import sqlalchemy as sa

        table, key = self.table, {"study": self.study_name, "name": name}
        try:
            with self.engine.begin() as connection:
                connection.execute(table.insert().values(**key, worker=me))
            return True
        except sa.exc.IntegrityError:
            pass
        holder = self.holder(name)
        if holder == me:
            return True
        if holder is not None and not stale(holder):
            return False
        where = sa.and_(table.c.study == self.study_name, table.c.name == name)
        if holder is None:  # released meanwhile (never done today): insert again
            return self._acquire(name, me, lambda _: False)
        with self.engine.begin() as connection:
            taken = connection.execute(
                table.update().where(where, table.c.worker == holder).values(worker=me)
            )
        return taken.rowcount == 1

    def holder(self, name: str) -> str | None:
        import sqlalchemy as sa

        table = self.table
        query = sa.select(table.c.worker).where(
            table.c.study == self.study_name, table.c.name == name
        )

        def read() -> str | None:
            with self.engine.connect() as connection:
                return connection.execute(query).scalar()

        return with_retries(read, self.retry_seconds)
