"""An Optuna storage that waits out a database that is briefly unreachable.

On a cluster the study's PostgreSQL restarts, fails over or drops off the network for a few
seconds. Optuna's RDB storage then raises on the first call, which would fail the trial being
trained (or kill the worker). :class:`RetryingStorage` wraps any storage and retries a call that
failed for lack of a connection, with exponential backoff, for up to ``retry_seconds``; every
other error (a finished trial updated, a bad value) passes through at once.

A retried write may have been committed before its connection dropped. Two cases matter:
finishing a trial (the retry then finds it finished: if it holds the state asked for, that was
this call's own commit) and creating a trial (a duplicate RUNNING entry that no worker holds: the
study store reclaims it once it is older than ``stale_after``, see ``store.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage

__all__ = ["RetryingStorage", "is_connection_error", "with_retries"]

_log = logging.getLogger("losslab.storage")
_CONNECTION_ERRORS = ("OperationalError", "InterfaceError", "DisconnectionError")


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database could not be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in _CONNECTION_ERRORS or isinstance(current, ConnectionError):
            return True
        if getattr(current, "connection_invalidated", False):
            return True
        current = current.__cause__ or current.__context__
    return False


def with_retries(
    call: Callable[[], Any], retry_seconds: float, sleep: Callable[[float], None] = time.sleep
) -> Any:
    """``call()``, retried like a storage call while the database is unreachable."""
    deadline = time.monotonic() + retry_seconds
    delay, failed = 0.25, False
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_connection_error(exc) or time.monotonic() + delay > deadline:
                raise
            if not failed:
                _log.warning(
                    "the study database is unreachable (%s); retrying for up to %.0f s",
                    type(exc).__name__,
                    retry_seconds,
                )
            failed = True
            sleep(delay)
            delay = min(2 * delay, 10.0)


class RetryingStorage(BaseStorage):
    """``inner`` with every call retried while the database is unreachable (module docstring).

    ``sleep`` is injectable for tests; ``waited`` counts the retries made (for the record).
    """

    def __init__(
        self,
        inner: BaseStorage,
        retry_seconds: float = 120.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.inner, self.retry_seconds, self.sleep = inner, retry_seconds, sleep
        self.waited = 0

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.inner, name)
        attempts = 0

        def call() -> Any:
            nonlocal attempts
            attempts += 1
            try:
                return method(*args, **kwargs)
            except UpdateFinishedTrialError:
                retried = attempts > 1 and name == "set_trial_state_values"
                if retried and self._already_set(*args):
                    return True  # our own commit went through before the connection dropped
                raise

        try:
            return with_retries(call, self.retry_seconds, self.sleep)
        finally:
            self.waited += attempts - 1

    def _already_set(self, trial_id: int, state: Any, values: Any = None) -> bool:
        trial = self.inner.get_trial(trial_id)
        return trial.state == state and (values is None or trial.values == list(values))

    def __getattr__(self, name: str) -> Any:  # anything not in BaseStorage's interface
        return getattr(self.inner, name)


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = getattr(BaseStorage, name).__doc__
    return method


for _name in [n for n in vars(BaseStorage) if not n.startswith("_")]:
    if callable(vars(BaseStorage)[_name]):
        setattr(RetryingStorage, _name, _delegate(_name))
RetryingStorage.__abstractmethods__ = frozenset()
