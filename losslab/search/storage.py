"""Optuna storages: which one a study uses, opened from a URL.

A storage is any Optuna RDB URL (``sqlite:///studies.db``, ``postgresql://user@host/db``) or a
journal file (``journal:studies.log``, or any path ending in ``.log``), which many processes on one
machine can share. The default (``ledger.default_storage_url``) is a journal file next to the
MLflow store.
"""

from __future__ import annotations

from pathlib import Path

from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

__all__ = ["open_storage"]


def _journal_path(url: str) -> str | None:
    if url.startswith("journal:"):
        return url[len("journal:") :].removeprefix("//")
    if "://" not in url and url.endswith((".log", ".journal")):
        return url
    return None


def open_storage(url: str) -> BaseStorage:
    """An Optuna storage from a URL (see the module docstring).

    Raises:
        ValueError: a URL Optuna cannot open, named.
    """
    path = _journal_path(url)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    if "://" not in url:
        raise ValueError(
            f"storage {url!r} is neither a database URL (sqlite:///..., postgresql://...) "
            "nor a journal file (journal:PATH or PATH.log)"
        )
    try:
        return RDBStorage(
            url, engine_kwargs={"pool_pre_ping": True} if "sqlite" not in url else None
        )
    except Exception as exc:  # sqlalchemy raises many types; name the URL
        raise ValueError(f"cannot open storage {url!r}: {type(exc).__name__}: {exc}") from None
