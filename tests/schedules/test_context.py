"""EpochContext: best scores, epochs since the best and progress over a scripted run."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from losslab.schedules import EpochContext

NAN = math.nan
FREQ = [0.8, 0.1, 0.06, 0.04]
# class 0 ties its best at epoch 3; class 1 unscored at 1 and 4; class 3 never scored
ROWS = [
    [0.9, NAN, 0.1, NAN],
    [0.95, 0.3, NAN, NAN],
    [0.95, 0.2, 0.4, NAN],
    [NAN, NAN, 0.3, NAN],
    [0.96, 0.5, 0.4, NAN],
]
BEST = [
    [0.9, NAN, 0.1, NAN],
    [0.95, 0.3, 0.1, NAN],
    [0.95, 0.3, 0.4, NAN],
    [0.95, 0.3, 0.4, NAN],
    [0.96, 0.5, 0.4, NAN],
]
SINCE = [
    [0, 1, 0, 1],
    [0, 0, 1, 2],
    [1, 1, 0, 3],
    [2, 2, 1, 4],
    [0, 0, 2, 5],
]


def same(actual, expected):
    """Equal entry by entry, NaN matching NaN."""
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e), (actual, expected)


def test_start_context_has_nothing_scored():
    ctx = EpochContext.start(FREQ, total_epochs=5)
    assert ctx.epoch == 0 and ctx.progress == 0.0 and ctx.num_classes == 4
    assert all(math.isnan(s) for s in ctx.scores + ctx.best_scores)
    assert ctx.epochs_since_best == (0, 0, 0, 0)
    assert ctx.frequencies == tuple(FREQ) and ctx.balancing_frequencies == tuple(FREQ)


def test_best_scores_and_epochs_since_best_over_a_scripted_run_with_nans():
    ctx = EpochContext.start(FREQ, total_epochs=5)
    for epoch, (row, best, since) in enumerate(zip(ROWS, BEST, SINCE), start=1):
        previous, ctx = ctx, ctx.next(row)
        assert ctx.epoch == epoch and previous.epoch == epoch - 1  # the old one is unchanged
        same(ctx.scores, row)
        same(ctx.best_scores, best)
        assert ctx.epochs_since_best == tuple(since), epoch
        assert ctx.progress == pytest.approx(epoch / 5)
        assert ctx.frequencies == tuple(FREQ)
    assert ctx.progress == 1.0


def test_scores_may_be_a_tensor_and_fields_are_plain_tuples():
    ctx = EpochContext.start(torch.tensor(FREQ, dtype=torch.float64), 3)
    ctx = ctx.next(torch.tensor([0.5, 0.25, NAN, 0.125]))
    same(ctx.scores, [0.5, 0.25, NAN, 0.125])
    assert all(type(v) is float for v in ctx.scores + ctx.frequencies)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.epoch = 2  # type: ignore[misc]


def test_balancing_frequencies_are_kept_along_the_chain():
    hegde = [0.8, 0.2, 0.1, 0.05]
    ctx = EpochContext.start(FREQ, 2, balancing_frequencies=hegde).next([0.1] * 4)
    assert ctx.balancing_frequencies == tuple(hegde)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: EpochContext.start([0.5, 0.4], 3), "frequencies must sum to 1"),
        (lambda: EpochContext.start([1.2, -0.2], 3), "frequencies must be finite and >= 0"),
        (lambda: EpochContext.start([], 3), "frequencies must have one entry per class"),
        (lambda: EpochContext.start([0.5, 0.5], 0), "total_epochs must be a positive integer"),
        (lambda: EpochContext.start([0.5, 0.5], 3).next([0.1]), r"scores must have 2 entries"),
        (
            lambda: EpochContext.start([0.5, 0.5], 3, balancing_frequencies=[1.0]),
            "balancing_frequencies must have 2 entries",
        ),
        (lambda: EpochContext.start([0.5, 0.5], 1).next([0.1, 0.2]).next([0.1, 0.2]), "last"),
        (lambda: EpochContext.start([0.5, 0.5], 3).next([math.inf, 0.2]), "finite or NaN"),
        (
            lambda: EpochContext(4, 3, (NAN,) * 2, (NAN,) * 2, (0, 0), (0.5, 0.5)),
            r"epoch must be an integer in \[0, total_epochs=3\]",
        ),
        (
            lambda: EpochContext(1, 3, (NAN,) * 2, (NAN,) * 2, (0,), (0.5, 0.5)),
            "epochs_since_best must have 2 entries",
        ),
        (
            lambda: EpochContext(1, 3, (NAN,) * 2, (NAN,) * 2, (0, 2), (0.5, 0.5)),
            r"epochs_since_best must be integers in \[0, epoch=1\]",
        ),
    ],
)
def test_bad_contexts_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()
