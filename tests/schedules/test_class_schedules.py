"""Static class schedules: uniform, inverse and median frequency (Hegde et al.)."""

from __future__ import annotations

import pytest

from losslab.schedules import (
    EpochContext,
    InverseFrequencyWeights,
    MedianFrequencyWeights,
    UniformWeights,
    get_class_schedule,
)
from losslab.schedules.class_schedules import (
    inverse_frequency_weights,
    median_frequency_weights,
)

from .helpers import at


def test_median_frequency_by_hand():
    # positive frequencies 0.5, 0.2, 0.1 -> median 0.2; absent class -> 0
    w = MedianFrequencyWeights(4, frequencies=[0.5, 0.2, 0.0, 0.1]).weights.tolist()
    assert w == pytest.approx([0.4, 1.0, 0.0, 2.0])
    # even count: median of 0.1, 0.2, 0.4, 0.8 is 0.3
    w = MedianFrequencyWeights(4, frequencies=[0.8, 0.4, 0.2, 0.1]).weights.tolist()
    assert w == pytest.approx([0.375, 0.75, 1.5, 3.0])


def test_inverse_frequency_mean_one_over_present_classes():
    # 1/f = 2, 4, 0, 10 -> mean over present 16/3
    w = InverseFrequencyWeights(4, frequencies=[0.5, 0.25, 0.0, 0.1]).weights.tolist()
    assert w == pytest.approx([0.375, 0.75, 0.0, 1.875])


def test_precomputed_weights_are_used_and_static():
    s = MedianFrequencyWeights(3, weights=[0.5, 1.0, 3.0])
    assert s.update(at(1, [0.1, 0.9, 0.2])).tolist() == pytest.approx([0.5, 1.0, 3.0])
    assert s.get_params() == {"frequencies": None, "weights": [0.5, 1.0, 3.0]}
    assert UniformWeights(3).update(at(1, [0.1, 0.9, 0.2])).tolist() == [1.0, 1.0, 1.0]


def test_frequency_arguments_are_validated():
    with pytest.raises(ValueError, match="at most one"):
        MedianFrequencyWeights(2, frequencies=[0.5, 0.5], weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="frequencies must have 3"):
        MedianFrequencyWeights(3, frequencies=[0.5, 0.5])
    with pytest.raises(ValueError, match=">= 0"):
        InverseFrequencyWeights(2, frequencies=[0.5, -0.1])


FREQ = [0.7, 0.2, 0.06, 0.04]  # voxel shares, sum 1
HEGDE = [0.7, 0.25, 0.1, 0.05]  # voxels over the voxels of the cases where the class is present


@pytest.mark.parametrize(
    ("cls", "formula"),
    [
        (MedianFrequencyWeights, median_frequency_weights),
        (InverseFrequencyWeights, inverse_frequency_weights),
    ],
)
def test_frequency_schedule_without_frequencies_takes_them_from_the_context(cls, formula):
    schedule = cls(4)
    assert schedule.weights.tolist() == [1.0, 1.0, 1.0, 1.0]  # before begin(): all ones
    schedule.begin(EpochContext.start(FREQ, 5, balancing_frequencies=HEGDE))
    expected = formula(HEGDE)
    assert expected != pytest.approx([1.0] * 4)
    assert schedule.weights.tolist() == pytest.approx(expected)
    # static afterwards, whatever the scores
    assert schedule.update(at(1, [0.9, 0.1, 0.5, 0.0])).tolist() == pytest.approx(expected)
    # without balancing frequencies the context's voxel frequencies are used
    plain = cls(4)
    plain.begin(EpochContext.start(FREQ, 5))
    assert plain.weights.tolist() == pytest.approx(formula(FREQ))


def test_explicit_frequencies_or_weights_win_over_the_context():
    ctx = EpochContext.start(FREQ, 5, balancing_frequencies=HEGDE)
    given = get_class_schedule("median_frequency", num_classes=4, frequencies=[0.4, 0.3, 0.2, 0.1])
    given.begin(ctx)
    assert given.weights.tolist() == pytest.approx(median_frequency_weights([0.4, 0.3, 0.2, 0.1]))
    weights = get_class_schedule("inverse_frequency", num_classes=4, weights=[1.0, 2.0, 3.0, 4.0])
    weights.begin(ctx)
    assert weights.weights.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_begin_checks_the_number_of_classes():
    with pytest.raises(ValueError, match="must have 3 entries"):
        MedianFrequencyWeights(3).begin(EpochContext.start(FREQ, 5))
    with pytest.raises(ValueError, match="must have 3 entries"):
        UniformWeights(3).begin(EpochContext.start(FREQ, 5))
