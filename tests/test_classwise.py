"""Foreground summaries of per-class vectors: background and NaN (unscored) classes left out."""

from __future__ import annotations

import math

import pytest
import torch

from losslab.classwise import foreground_mean, foreground_values, nanmean

NAN = math.nan


def test_nanmean_skips_nan_and_is_nan_when_nothing_is_left():
    assert nanmean([0.2, NAN, 0.4]) == pytest.approx(0.3)
    assert math.isnan(nanmean([NAN, NAN]))
    assert math.isnan(nanmean([]))


def test_foreground_values_drop_background_and_nan_in_class_order():
    assert foreground_values([0.99, 0.5, NAN, 0.1]) == [0.5, 0.1]
    assert foreground_values([0.99]) == []
    assert foreground_values([]) == []


def test_foreground_values_accept_tensor_elements_and_give_floats():
    values = foreground_values(torch.tensor([1.0, 0.25, NAN, 0.75]))
    assert values == [0.25, 0.75]
    assert all(type(v) is float for v in values)


def test_foreground_mean_never_counts_the_background():
    assert foreground_mean([0.0, 0.6, NAN, 0.8]) == pytest.approx(0.7)
    # A background value alone, or only unscored foreground classes: no mean.
    assert math.isnan(foreground_mean([0.99]))
    assert math.isnan(foreground_mean([0.99, NAN, NAN]))
