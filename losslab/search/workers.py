"""Who runs an evaluation, whether it is still alive, and how long the others wait for it.

Every ledger entry and MLflow run records its worker as ``host:pid``. A worker killed mid-trial
(SIGKILL, power loss, a preempted cluster node) leaves its entry RUNNING; :func:`is_stale` tells
that it will never finish: its process is gone on this host, or, for a worker on another host,
its heartbeat is older than ``stale_after`` seconds. A live worker refreshes the heartbeat of
every entry it holds from a background thread (:class:`Heartbeat`), every ``heartbeat`` seconds
whatever the length of an epoch, so a long epoch never makes a live worker look dead.

The study file sets these under ``workers:`` (:class:`WorkerSettings`); they are operational, not
part of the study's identity, and may change between invocations.

``LOSSLAB_WORKER_HOST`` replaces the host name in the worker's id, for containers that share
one host name (and for tests that play several machines on one).
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from losslab.limits import at_most

__all__ = [
    "STALE_AFTER",
    "Heartbeat",
    "WorkerSettings",
    "is_stale",
    "worker_alive",
    "worker_host",
    "worker_id",
]

STALE_AFTER = 300.0  # seconds: the default of ``workers.stale_after``


@dataclass(frozen=True)
class WorkerSettings:
    """How workers sharing a study watch each other (the study file's ``workers:``).

    ``stale_after``: seconds without a heartbeat after which a worker on another host is taken
    for dead and its entry reclaimed (its trial runs again elsewhere). ``heartbeat``: seconds
    between heartbeats (default a fifth of ``stale_after``, at most 60). ``retry_minutes``: how
    long a worker retries an unreachable storage (PostgreSQL restarting, a network blip) before
    it gives up. ``batch``: the most entries a worker reserves at once, so that workers share
    a large batch (a GP generation) and a worker's batch still fills a population on its GPU.
    ``population``: the most evaluations of a batch trained at once as one batched network
    (``losslab.training.population``); default 8 on a GPU and 1 (one at a time) on the CPU,
    where batching the network gains nothing (``docs/benchmarks.md``).
    """

    stale_after: float = STALE_AFTER
    heartbeat: float | None = None
    retry_minutes: float = 2.0
    batch: int = 8
    population: int | None = None

    def __post_init__(self) -> None:
        if type(self.batch) is not int or self.batch < 1:
            raise ValueError(f"batch={self.batch!r} must be a positive integer")
        if self.population is not None and (
            type(self.population) is not int or self.population < 1
        ):
            raise ValueError(f"population={self.population!r} must be a positive integer")
        for name in ("stale_after", "heartbeat", "retry_minutes"):
            value = getattr(self, name)
            if value is None and name == "heartbeat":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name}={value!r} must be a number of seconds")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}={value!r} must be > 0")
        for name in ("batch", "population", "stale_after", "heartbeat", "retry_minutes"):
            if getattr(self, name) is not None:
                at_most(getattr(self, name), f"workers.{name}", name)
        if self.heartbeat is not None and self.heartbeat * 2 > self.stale_after:
            raise ValueError(
                f"heartbeat={self.heartbeat!r} must be at most half of stale_after="
                f"{self.stale_after!r}: a live worker would be taken for dead between two beats"
            )

    @property
    def interval(self) -> float:
        """Seconds between two heartbeats."""
        return self.heartbeat if self.heartbeat is not None else min(60.0, self.stale_after / 5)

    def population_size(self, train: Any) -> int:
        """``population``, or its default for the device ``train`` (a ``TrainConfig``) uses."""
        if self.population is not None:
            return self.population
        from losslab.training.config import resolve_device

        return 8 if resolve_device(train.device).type == "cuda" else 1

    @property
    def retry_seconds(self) -> float:
        return 60.0 * self.retry_minutes


def worker_host() -> str:
    """This worker's host name (``LOSSLAB_WORKER_HOST`` if set)."""
    return os.environ.get("LOSSLAB_WORKER_HOST") or socket.gethostname()


def worker_id() -> str:
    """``host:pid`` of this process (recorded on every run and trial it starts)."""
    return f"{worker_host()}:{os.getpid()}"


def worker_alive(worker: str) -> bool | None:
    """Whether ``host:pid`` is a live process; ``None`` when it runs on another host."""
    host, _, pid = worker.rpartition(":")
    if host != worker_host() or not pid.isdigit():
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
    """A RUNNING entry or run whose worker is gone (see the module docstring)."""
    alive = worker_alive(worker) if worker else None
    if alive is not None:
        return not alive
    return heartbeat is not None and time.time() - heartbeat > stale_after


class Heartbeat:
    """Calls ``beat`` every ``interval`` seconds from a daemon thread while in a ``with`` block.

    A beat that raises (the storage unreachable for a moment) is skipped: the next one tries
    again, and staleness allows several missed beats (``interval`` <= ``stale_after`` / 2).
    """

    def __init__(self, beat: Callable[[], None], interval: float):
        self.beat, self.interval = beat, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.missed = 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - never let a beat kill the worker
                self.missed += 1

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="losslab-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
