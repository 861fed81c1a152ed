"""The time budget of one invocation (``budget.minutes``), enforced inside evaluations too.

Checking the budget only between evaluations lets one evaluation run on long after it (a
one-minute budget, a trial of several minutes). :class:`DeadlineHook` checks the clock at the
start of a run, after every optimiser step and after every epoch (a host clock read, no device
sync) and raises :class:`TimeUp` once the budget has ended.

``TimeUp`` is a ``KeyboardInterrupt``, so a run it stops takes exactly the path of Ctrl-C: the
trainer records the run as ``interrupted`` (MLflow: KILLED, tag ``status=interrupted``) and
re-raises, and the backend fails the trial as interrupted (not counted against the budget) and
re-queues its parameters. The study catches it and ends normally; the next invocation evaluates
the re-queued candidate again.
"""

from __future__ import annotations

import time
from typing import Any

from losslab import interrupts
from losslab.training import Hook

__all__ = ["DeadlineHook", "SignalHook", "TimeUp"]


class TimeUp(KeyboardInterrupt):
    """The time budget of the invocation ended during an evaluation (see the module docstring)."""


class DeadlineHook(Hook):
    """Raises :class:`TimeUp` once ``time.perf_counter()`` passes ``deadline``."""

    population_safe = True  # reads the clock only (losslab.training.population)

    def __init__(self, deadline: float, minutes: float):
        self.deadline, self.minutes = deadline, minutes

    def check(self) -> None:
        if time.perf_counter() >= self.deadline:
            raise TimeUp(f"the time budget of {self.minutes:g} minute(s) ended")

    def on_train_start(self, state: Any) -> None:
        self.check()

    def on_step_end(self, state: Any) -> None:
        self.check()

    def on_epoch_end(self, state: Any, record: Any) -> None:
        self.check()


class SignalHook(Hook):
    """Raises ``KeyboardInterrupt`` after a step or epoch when a signal asked the process to
    stop and its own raise was swallowed (``losslab.interrupts``): a host flag read."""

    population_safe = True

    def on_train_start(self, state: Any) -> None:
        interrupts.raise_if_pending()

    def on_step_end(self, state: Any) -> None:
        interrupts.raise_if_pending()

    def on_epoch_end(self, state: Any, record: Any) -> None:
        interrupts.raise_if_pending()
