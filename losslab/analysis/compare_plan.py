"""What ``losslab compare`` will train, said before it starts: the trials a short study has (a
``--top`` larger than them takes those there are, with a notice), how many evaluations the
cache already holds, and about how long the rest takes here.

An evaluation's time at the final fidelity is the median wall time of the comparison's cached
evaluations when there are some, else that of the study's own evaluations scaled by the
number of optimiser steps (``epochs x steps_per_epoch``) of the two fidelities: the step
dominates a run's cost, validation and the test split add a little (so the estimate is a
lower bound, said with "about").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from losslab.analysis.comparison import cached_comparison
from losslab.analysis.finished import FinishedStudy
from losslab.search.study_timing import duration, evaluation_seconds, plural

__all__ = ["ComparePlan", "available_top", "plan_comparison"]


def available_top(studies: Sequence[FinishedStudy], top: int | None) -> tuple[int | None, str]:
    """``top`` lowered to the distinct finished trials of the shortest study (at least 1; a
    study with none is refused by ``check_request``), and a notice when it was lowered."""
    counts = [len(s.ranked()) for s in studies]
    if top is None or not all(counts) or top <= min(counts):
        return top, ""
    lowest = min(counts)
    name = studies[counts.index(lowest)].config.name
    return lowest, (
        f"--top {top}: study {name!r} has {plural(lowest, 'distinct finished trial')} so far; "
        f"comparing its best {lowest} (continue the study for more: losslab search ...)"
    )


@dataclass
class ComparePlan:
    """How many evaluations a comparison has, holds and must train, and their time here."""

    total: int
    cached: int
    seconds_each: float | None  # one evaluation at the final fidelity, here
    source: str  # where the time comes from

    @property
    def to_train(self) -> int:
        return self.total - self.cached

    def line(self, minutes: float | None = None) -> str:
        """``18 evaluations: 6 in the cache, 12 to train, about 3.5 min each here ...``."""
        text = (
            f"{plural(self.total, 'evaluation')}: {self.cached} in the cache, "
            f"{self.to_train} to train"
        )
        if self.to_train and self.seconds_each is not None:
            text += (
                f", about {duration(self.seconds_each)} each here ({self.source}): about "
                f"{duration(self.to_train * self.seconds_each)} in all"
            )
        elif self.to_train:
            text += " (no evaluation has finished here yet to time them)"
        if minutes is not None and self.to_train:
            text += f"; --minutes {minutes:g} stops it then (a rerun continues)"
            if self.seconds_each:
                fit = min(int(60 * minutes // self.seconds_each), self.to_train)
                text += f", after about {plural(fit, 'evaluation')}"
        return text + "."


def _steps(study: FinishedStudy, fidelity) -> int:
    train = fidelity.apply(study.config.train)
    return max(1, train.epochs * train.steps_per_epoch)


def plan_comparison(
    study: FinishedStudy, *, fidelity: str | None, top: int | None, seeds: int
) -> ComparePlan:
    """The plan of comparing ``study`` (the first study of a comparison): its entrants times
    ``seeds`` evaluations, those in the cache and the time of one (see the module docstring)."""
    found = cached_comparison(study, fidelity=fidelity, top=top)
    entrants = min(top or study.config.top, len(study.ranked())) + len(study.config.baselines)
    total = entrants * seeds
    if found is None:
        cached, final = 0, []
    else:
        kept = found.seeds[:seeds]
        final = [r for e in found.entrants for r in e.results[: len(kept)]]
        cached = sum(r.status != "missing" for r in final)
    seconds = evaluation_seconds(final)
    if seconds is not None:
        return ComparePlan(total, cached, seconds, "the comparison's own evaluations")
    searched = evaluation_seconds(study.outcome().results.values())
    if searched is None:
        return ComparePlan(total, cached, None, "")
    _, final_fidelity = study.config.final_fidelity(fidelity)
    ratio = _steps(study, final_fidelity) / _steps(study, study.config.fidelity)
    scaled = searched * ratio if math.isfinite(ratio) else None
    source = "the study's evaluations"
    if ratio != 1:
        source += f", x {ratio:.3g} for the final fidelity's steps"
    return ComparePlan(total, cached, scaled, source)
