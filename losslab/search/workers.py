"""Who runs an evaluation, and whether it is still alive.

Every ledger entry and MLflow run records its worker as ``host:pid``. A worker killed mid-trial
(SIGKILL, power loss) leaves its entry RUNNING; :func:`is_stale` tells that it will never finish:
its process is gone on this host, or, for a worker on another host, its heartbeat (refreshed
every epoch) is older than ``stale_after`` seconds.
"""

from __future__ import annotations

import os
import socket
import time

__all__ = ["STALE_AFTER", "is_stale", "worker_alive", "worker_id"]

STALE_AFTER = 3600.0


def worker_id() -> str:
    """``host:pid`` of this process (recorded on every run and trial it starts)."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
    """A RUNNING entry or run whose worker is gone (see the module docstring)."""
    alive = worker_alive(worker) if worker else None
    if alive is not None:
        return not alive
    return heartbeat is not None and time.time() - heartbeat > stale_after
