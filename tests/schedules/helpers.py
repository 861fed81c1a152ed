"""Build the epoch contexts that class schedules are fed in the tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

from losslab.schedules import EpochContext


def uniform(num_classes: int) -> list[float]:
    return [1.0 / num_classes] * num_classes


def contexts(rows: Sequence[Sequence[float]], total_epochs: int | None = None) -> list:
    """The start context (uniform frequencies) followed by one chained context per row of scores
    (epochs 1, 2, ...)."""
    num_classes = len(rows[0])
    ctx = EpochContext.start(uniform(num_classes), total_epochs or len(rows))
    out = [ctx]
    for row in rows:
        ctx = ctx.next(row)
        out.append(ctx)
    return out


def at(epoch: int, scores: Sequence[float]) -> EpochContext:
    """A context of ``epoch`` with these scores (as if no class had been scored before)."""
    scored = [not math.isnan(s) for s in scores]
    return EpochContext(
        epoch=epoch,
        total_epochs=max(epoch, 100),
        scores=tuple(scores),
        best_scores=tuple(scores),
        epochs_since_best=tuple(0 if s else epoch for s in scored),
        frequencies=uniform(len(scores)),
    )


def run(schedule, rows: Sequence[Sequence[float]]) -> list[list[float]]:
    """Begin ``schedule``, feed it rows of scores for epochs 1, 2, ...; return the weights after
    each epoch as lists."""
    start, *after = contexts(rows)
    schedule.begin(start)
    return [schedule.update(ctx).tolist() for ctx in after]
