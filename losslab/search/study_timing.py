"""What fits in a study's time budget, from how long its evaluations take on this machine.

The baselines train first, at the study's fidelity, outside ``budget.minutes`` (once: they are
cached, so a rerun starts its trials at once); the minutes count the trials of one invocation.
An evaluation's time here is the median wall time of the study's finished evaluations (ok
ones: a pruned trial stops early), measured on this machine or found in the study's cache. The
lines below say what that means before the trials start, and what to do when no trial fits.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

from losslab.training import Result

__all__ = [
    "baselines_line",
    "duration",
    "evaluation_seconds",
    "fit_line",
    "no_trial_line",
    "plural",
]


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 trial``, ``2 trials`` (``many`` for an irregular plural)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def duration(seconds: float) -> str:
    """``45 s``, ``3.2 min``, ``1.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def evaluation_seconds(results: Iterable[Result | None]) -> float | None:
    """The median wall time of the ok results (``None`` when there is none)."""
    times = [
        r.wall_time
        for r in results
        if r is not None and r.ok and math.isfinite(r.wall_time) and r.wall_time > 0
    ]
    return statistics.median(times) if times else None


def baselines_line(
    untrained: int,
    total: int,
    minutes: float | None,
    seconds: float | None,
    where: str = "at the search fidelity",
) -> str:
    """Before the baselines: how many train now (``where``: at which fidelities), that they
    are outside the trials' minutes."""
    if not total:
        return "No baselines: the trials start at once."
    if not untrained:
        what = "The baseline is" if total == 1 else f"The {total} baselines are"
        return f"{what} in the study's cache: the trials start at once."
    budget = "" if minutes is None else f", before the {minutes:g} minutes of trials start"
    known = "" if seconds is None else f"; about {duration(untrained * seconds)} here"
    return (
        f"{plural(untrained, 'baseline')} train first {where} (not counted in "
        f"budget.minutes{budget}; cached for later runs){known}."
    )


def fit_line(seconds: float | None, minutes: float | None, trials_left: int | None) -> str:
    """When the trials start: about how many fit in the minutes, or a warning that none does."""
    if trials_left is not None and trials_left <= 0:
        return "The study's trials are done (budget.trials); --trials N continues it up to N."
    left = "" if trials_left is None else f" ({plural(trials_left, 'trial')} left in the budget)"
    if seconds is None:
        what = "" if minutes is None else f" for {minutes:g} minutes"
        return f"Trials start{what}{left}; no evaluation has finished here yet to time them."
    each = f"one evaluation takes about {duration(seconds)} here"
    if minutes is None:
        return f"Trials start{left}: {each}."
    fit = int(60 * minutes // seconds)
    if fit == 0:
        need = math.ceil(1.5 * seconds / 60)
        return (
            f"[yellow]Trials start for {minutes:g} minutes{left}, but {each}: no trial can "
            f"finish in time. Stop (Ctrl-C) and give more time, e.g. --minutes {need}.[/]"
        )
    if trials_left is not None:
        fit = min(fit, trials_left)
    return (
        f"Trials start for {minutes:g} minutes{left}: {each}, so about "
        f"{plural(fit, 'trial')} fit (more when pruned ones stop early)."
    )


def no_trial_line(seconds: float | None, minutes: float | None, command: str) -> str:
    """After a run in which no trial finished: why, and the command that gives it time."""
    need = None if seconds is None else max(math.ceil(1.5 * seconds / 60), 1)
    if minutes is not None and need is not None and need > minutes:
        return (
            f"No trial finished: one evaluation takes about {duration(seconds)} here, more than "
            f"the {minutes:g} minutes of budget.minutes (an evaluation the time limit stops "
            f"starts again from its beginning). Give it more time: {command} --minutes {need}"
        )
    more = "" if minutes is None else f" --minutes {max(2 * minutes, need or 0):g}"
    return (
        f"No trial finished in this run. Continue the study (finished evaluations are kept): "
        f"{command}{more}"
    )
