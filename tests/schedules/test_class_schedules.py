"""Static class schedules: uniform, inverse and median frequency (Hegde, paper 001)."""

from __future__ import annotations

import pytest

from losslab.schedules import InverseFrequencyWeights, MedianFrequencyWeights, UniformWeights


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
    assert s.update(1, [0.1, 0.9, 0.2]).tolist() == pytest.approx([0.5, 1.0, 3.0])
    assert s.get_params() == {"frequencies": None, "weights": [0.5, 1.0, 3.0]}
    assert UniformWeights(3).update(1, [0.1, 0.9, 0.2]).tolist() == [1.0, 1.0, 1.0]


def test_frequency_arguments_are_validated():
    with pytest.raises(ValueError, match="exactly one"):
        MedianFrequencyWeights(2)
    with pytest.raises(ValueError, match="frequencies must have 3"):
        MedianFrequencyWeights(3, frequencies=[0.5, 0.5])
    with pytest.raises(ValueError, match=">= 0"):
        InverseFrequencyWeights(2, frequencies=[0.5, -0.1])
