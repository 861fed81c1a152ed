"""Means over per-class value vectors (index = label value, ``[0]`` the background).

A per-class vector holds one value per class (Dice, sensitivity, HD95...), ``NaN`` where the
class was not scored (absent from the split, or not validated). Background is never part of a
foreground summary, and a ``NaN`` is left out rather than counted. Plain Python, no project
imports: training, search, reports and comparisons may all use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["foreground_mean", "foreground_values", "nanmean"]


def nanmean(values: Iterable[float]) -> float:
    """Mean of the values that are not NaN (NaN if none)."""
    present = [float(v) for v in values if not math.isnan(float(v))]
    return sum(present) / len(present) if present else math.nan


def foreground_values(values: Sequence[float]) -> list[float]:
    """The scored foreground values of a per-class vector, in class order, as floats.

    Class 0 (background) and every NaN are dropped; an empty list when no foreground class has
    a value.
    """
    return [float(v) for v in list(values)[1:] if not math.isnan(float(v))]


def foreground_mean(values: Sequence[float]) -> float:
    """Mean over the foreground classes (1..) that have a value; NaN if none has one."""
    return nanmean(foreground_values(values))
