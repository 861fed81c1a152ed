"""Optuna storages: which one a study uses, and reclaiming trials whose worker died.

A storage is any Optuna RDB URL (``sqlite:///studies.db``, ``postgresql://user@host/db``) or a
journal file (``journal:studies.log``, or any path ending in ``.log``), which many processes on one
machine can share. The default is a journal file next to the MLflow store.

A worker killed mid-trial (SIGKILL, power loss) leaves its trial RUNNING forever. Every trial
records its worker (``host:pid``) and a heartbeat (refreshed every epoch); a study that starts or
resumes reclaims a RUNNING trial whose worker is a dead process on this host, or whose heartbeat
is older than ``stale_after`` seconds: the trial becomes FAIL (marked ``interrupted``, so it does
not count against the budget) and its parameters are enqueued again, so the same candidate is
evaluated and nothing the sampler proposed is lost.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "INTERRUPTED",
    "default_storage_url",
    "is_stale",
    "open_storage",
    "reclaim_stale_trials",
]

INTERRUPTED = "losslab.interrupted"  # trial user attr: why it was cut short (not a real failure)
WORKER = "losslab.worker"
HEARTBEAT = "losslab.heartbeat"
STALE_AFTER = 3600.0


def default_storage_url(tracking_uri: str) -> str:
    """A journal file beside a local MLflow store (``sqlite:///dir/mlflow.db`` -> ``dir``)."""
    folder = Path(".")
    if tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri[len("sqlite:///") :]).parent
    return f"journal:{folder / 'optuna-studies.log'}"


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


def worker_alive(worker: str) -> bool | None:
    """Whether ``host:pid`` is a live process; ``None`` when it runs on another host."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(worker: str, heartbeat: float | None, stale_after: float = STALE_AFTER) -> bool:
    """A RUNNING trial or run whose worker is gone (see the module docstring)."""
    alive = worker_alive(worker) if worker else None
    if alive is not None:
        return not alive
    return heartbeat is not None and time.time() - heartbeat > stale_after


def reclaim_stale_trials(
    study: optuna.Study, storage: BaseStorage, stale_after: float = STALE_AFTER
) -> list[FrozenTrial]:
    """Fail and re-enqueue the RUNNING trials of dead workers; returns the reclaimed trials."""
    reclaimed = []
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if not is_stale(attrs.get(WORKER, ""), attrs.get(HEARTBEAT), stale_after):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(
                trial_id, INTERRUPTED, f"worker {attrs.get(WORKER)} stopped"
            )
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                continue
        except RuntimeError:  # another worker reclaimed it first (UpdateFinishedTrialError)
            continue
        study.enqueue_trial(trial.params, user_attrs={"losslab.retry_of": trial.number})
        reclaimed.append(trial)
    return reclaimed
