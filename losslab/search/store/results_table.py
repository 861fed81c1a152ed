"""The evaluation results of a study, in a store of losslab's own beside its Optuna storage.

A finished evaluation (its whole ``Result``: per-epoch history, per-case test metrics, logit
histograms; several KB) is kept under its evaluation key, as the JSON object
``{"result": ..., "run_id": ..., "origin": ...}``, out of the Optuna study's attributes (where
optuna-dashboard would show it, and where every lookup would read them all):

- on a database storage (SQLite, PostgreSQL) in the table ``losslab_results`` of the same
  database, ``(study VARCHAR, key VARCHAR, body TEXT, PRIMARY KEY (study, key))``: a put is an
  insert that ignores a key already there (a worker racing on the same evaluation put the same
  result), a get one single-row ``SELECT``;
- on a journal file (workers on one machine) one JSON file per key in a folder beside it,
  ``<journal file>.results/<study name, URL-quoted>/<key>.json``, written to a temporary file in
  the same folder and moved into place (``os.replace``), so that a reader never sees half a file.

Either way a result is seen by every worker as soon as it is put. The table (the folder) is made
once per store by a worker (:meth:`OptunaStudyStore.open`), not by a read-only open
(``losslab show``): a get on a table not made yet finds nothing, and a put makes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any
from urllib.parse import quote

from losslab.search.store.retrying_storage import with_retries
from losslab.search.store.storage import journal_path

__all__ = ["FileResults", "Results", "SqlResults", "open_results", "safe_name"]

TABLE = "losslab_results"


class Results(ABC):
    """Result bodies (JSON-able mappings) by evaluation key, for one study."""

    @abstractmethod
    def get(self, key: str) -> dict[str, Any] | None:
        """The body put under ``key`` (``None``: none yet)."""

    @abstractmethod
    def put(self, key: str, body: dict[str, Any]) -> None:
        """Keep ``body`` under ``key``; a key already there keeps its body (same evaluation)."""


def safe_name(name: str) -> str:
    """``name`` as one file name: URL-quoted (no ``/``), and never ``.`` or ``..``."""
    quoted = quote(name, safe="")
    return quoted.replace(".", "%2E") if quoted.strip(".") == "" else quoted


class FileResults(Results):
    """One JSON file per key in ``<journal file>.results/<study>/`` (module docstring)."""

    def __init__(self, journal_file: str | Path, study_name: str, *, create: bool = True):
        self.folder = Path(f"{journal_file}.results") / safe_name(study_name)
        if create:
            self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / f"{safe_name(key)}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        try:
            text = self.path(key).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return json.loads(text)

    def put(self, key: str, body: dict[str, Any]) -> None:
        target = self.path(key)
        if target.exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=self.folder, prefix=f".{target.stem}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(body, out, separators=(",", ":"))
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise


class SqlResults(Results):
    """The table ``losslab_results`` of the study's database (module docstring).

    ``create``: make the table now (a worker); otherwise (a read-only open) a get finds nothing
    until another worker made it, and a put makes it.
    """

    def __init__(
        self, engine: Any, study_name: str, retry_seconds: float = 120.0, *, create: bool = True
    ):
        import sqlalchemy as sa

        self.engine, self.study_name, self.retry_seconds = engine, study_name, retry_seconds
        self.metadata = sa.MetaData()
        self.table = sa.Table(
            TABLE,
            self.metadata,
            sa.Column("study", sa.String(512), primary_key=True),
            sa.Column("key", sa.String(512), primary_key=True),
            sa.Column("body", sa.Text, nullable=False),
        )
        self.ready = False
        if create:
            self._create()

    def _exists(self) -> bool:
        import sqlalchemy as sa

        if not self.ready:
            self.ready = with_retries(
                lambda: sa.inspect(self.engine).has_table(TABLE), self.retry_seconds
            )
        return self.ready

    def _create(self) -> None:
        import sqlalchemy as sa

        try:
            with_retries(lambda: self.metadata.create_all(self.engine), self.retry_seconds)
        except sa.exc.DatabaseError:  # created by another worker at the same moment
            if not sa.inspect(self.engine).has_table(TABLE):
                raise
        self.ready = True

    def get(self, key: str) -> dict[str, Any] | None:
        import sqlalchemy as sa

        if not self._exists():
            return None
        table = self.table
        query = sa.select(table.c.body).where(table.c.study == self.study_name, table.c.key == key)

        def read() -> str | None:
            with self.engine.connect() as connection:
                return connection.execute(query).scalar()

        body = with_retries(read, self.retry_seconds)
        return None if body is None else json.loads(body)

    def put(self, key: str, body: dict[str, Any]) -> None:
        import sqlalchemy as sa

        if not self.ready:
            self._create()
        row = {
            "study": self.study_name,
            "key": key,
            "body": json.dumps(body, separators=(",", ":")),
        }
        statement = self._insert_or_ignore().values(**row)

        def write() -> None:
            try:
                with self.engine.begin() as connection:
                    connection.execute(statement)
            except sa.exc.IntegrityError:  # put by another worker (or by a retried commit)
                pass

        with_retries(write, self.retry_seconds)

    def _insert_or_ignore(self) -> Any:
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert

            return insert(self.table).on_conflict_do_nothing()
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert

            return insert(self.table).on_conflict_do_nothing()
        return self.table.insert()  # any other database: a duplicate raises IntegrityError


def open_results(storage: Any, url: str, study_name: str, workers: Any, *, create: bool) -> Results:
    """The results of the study ``study_name`` in ``storage`` (opened from ``url``): its
    database's table, or the folder beside its journal file. ``workers``: the study's
    ``WorkerSettings`` (``retry_seconds``). ``create``: make the table (the folder) now, as a
    worker does once as it opens the study; a read-only open (``create=False``) makes nothing."""
    rdb = getattr(storage, "rdb", None)
    if rdb is not None:
        return SqlResults(rdb.engine, study_name, workers.retry_seconds, create=create)
    return FileResults(journal_path(url), study_name, create=create)
