"""The study store: the ledger, the evaluation cache and claims on an Optuna
storage (journal file, SQLite, PostgreSQL), behind one face.

``open_store(url, ...)`` gives the :class:`~losslab.search.store.ledger.StudyStore` of a
study; ``default_storage_url`` and ``study_folder`` say where a study keeps its files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from losslab._lazy import lazy_exports

if TYPE_CHECKING:
    from losslab.search.store.ledger import StudyStore
    from losslab.search.workers import WorkerSettings

# Imported on first use: opening this package must not load the ledger, the Optuna store
# and, through them, the evaluator.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "OptunaStudyStore": "losslab.search.store.optuna_store",
        "StudyMismatch": "losslab.search.store.ledger",
        "StudyStore": "losslab.search.store.ledger",
    },
)

__all__ = [
    "OptunaStudyStore",
    "StudyMismatch",
    "StudyStore",
    "default_storage_url",
    "open_store",
    "study_folder",
]


def default_storage_url(tracking_uri: str) -> str:
    """A journal file beside a local MLflow store (``sqlite:///dir/mlflow.db`` -> ``dir``)."""
    folder = Path(".")
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri[len("sqlite:///") :]).parent
    return f"journal:{folder / 'optuna-studies.log'}"


def study_folder(storage_url: str | None, tracking_uri: str) -> Path:
    """The folder a study keeps its files in (ML3's loss networks): the folder of its journal
    or SQLite store, else of its local MLflow store, else the current folder."""
    url = storage_url or default_storage_url(tracking_uri)
    if url.startswith("journal:"):
        return Path(url[len("journal:") :].removeprefix("//")).parent
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).parent
    if "://" not in url and url.endswith((".log", ".journal")):
        return Path(url).parent
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///") :]).parent
    return Path(".")


def open_store(
    url: str,
    *,
    study_name: str,
    fingerprint: str,
    source: str = "",
    workers: WorkerSettings | None = None,
    metric_name: str = "objective",
) -> StudyStore:
    """The study store at ``url`` (an Optuna storage URL or ``journal:PATH``; see
    ``storage.py``); not opened yet."""
    from losslab.search.store.optuna_store import OptunaStudyStore  # optuna: on use

    return OptunaStudyStore(
        url,
        study_name=study_name,
        fingerprint=fingerprint,
        source=source,
        workers=workers,
        metric_name=metric_name,
    )
