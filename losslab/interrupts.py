"""A stop a signal asked for, kept until a safe place acts on it.

``losslab search`` turns SIGTERM (what a scheduler sends) into ``KeyboardInterrupt``, so a
terminated worker records its evaluation as interrupted, as Ctrl-C does. Python raises a signal
handler's exception wherever the main thread is; when that is inside a garbage-collector or
weakref callback (a database session being cleaned up), the exception is printed as "ignored"
and lost, and the study would go on. So the handler also records the request here, and the
study checks it after every optimiser step, every epoch and between evaluations
(``search/deadline.py``), raising ``KeyboardInterrupt`` again. Nothing here imports losslab.
"""

from __future__ import annotations

__all__ = ["clear", "pending", "raise_if_pending", "request"]

_requested: str | None = None


def request(why: str) -> None:
    """Record that the process was asked to stop (``why``: ``signal 15``)."""
    global _requested
    _requested = why


def pending() -> str | None:
    """Why the process was asked to stop, or ``None``."""
    return _requested


def raise_if_pending() -> None:
    """Raise ``KeyboardInterrupt`` when a stop was asked for."""
    if _requested is not None:
        raise KeyboardInterrupt(_requested)


def clear() -> None:
    """Forget the request (a process that goes on after handling it)."""
    global _requested
    _requested = None
