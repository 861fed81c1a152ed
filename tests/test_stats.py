"""Tests of losslab.stats.paired against values computed by hand on small fixed tables.

Each expected value is a literal with the hand computation beside it; where the null
distribution is needed it is enumerated here by brute force, independently of SciPy.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats as sp

from losslab.stats.paired import (
    BETTER,
    WORSE,
    Interval,
    holm,
    mean_interval,
    paired_test,
    significance_mark,
)

__all__: list[str] = []

nan = math.nan


# ----------------------------------------------------------------------------- Holm


def test_holm_hand_values() -> None:
    # sorted: 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_holm_preserves_input_order() -> None:
    # same p-values shuffled: each keeps its own adjusted value
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])


def test_holm_nan_stays_nan_and_does_not_count() -> None:
    # m = 3 (the NaN is no test): as in test_holm_hand_values
    adjusted = holm([0.01, nan, 0.04, 0.03])
    assert math.isnan(adjusted[1])
    assert [adjusted[0], adjusted[2], adjusted[3]] == pytest.approx([0.03, 0.06, 0.06])


def test_holm_caps_at_one() -> None:
    # sorted: 0.3 * 3 = 0.9; 0.6 * 2 = 1.2 -> 1; 0.9 * 1 = 0.9 -> max(1, 0.9) = 1
    assert holm([0.3, 0.6, 0.9]) == pytest.approx([0.9, 1.0, 1.0])
    assert holm([]) == []


# ----------------------------------------------------------------------------- Wilcoxon


def test_wilcoxon_all_positive_exact() -> None:
    # d = 1, 2, 3, 4, 5: W- = 0; only the all-plus pattern of 2**5 = 32 reaches it,
    # two-sided p = 2 * 1/32 = 0.0625
    result = paired_test([11, 12, 13, 14, 15], [10, 10, 10, 10, 10])
    assert result.method == "wilcoxon"
    assert result.n == 5
    assert result.p == pytest.approx(0.0625)
    assert result.difference.mean == pytest.approx(3.0)  # (1+2+3+4+5)/5


def test_wilcoxon_three_seeds_floor() -> None:
    # the docstring's claim: 3 pairs, all positive -> p = 2 / 2**3 = 0.25, never < 0.05
    assert paired_test([2.0, 3.0, 4.0], [1.0, 1.0, 1.0]).p == pytest.approx(0.25)


def test_wilcoxon_mixed_signs_against_enumerated_null() -> None:
    a = [13, 9, 14, 12, 5, 16]
    b = [10] * 6
    # d = 3, -1, 4, 2, -5, 6; |d| ranks 3, 1, 4, 2, 5, 6
    # W+ = 3 + 4 + 2 + 6 = 15, W- = 1 + 5 = 6 (total 21)
    ranks = [1, 2, 3, 4, 5, 6]
    null = [
        sum(r for r, s in zip(ranks, signs) if s > 0)
        for signs in itertools.product((1, -1), repeat=6)
    ]
    # two-sided: W+ as extreme as 15 either way, i.e. W+ >= 15 or W+ <= 6:
    # subsets of {1..6} with sum <= 6: 1+1+1+2+2+3+4 = 14 -> p = 2 * 14/64 = 0.4375
    p_enumerated = sum(w >= 15 or w <= 6 for w in null) / len(null)
    assert p_enumerated == pytest.approx(0.4375)
    result = paired_test(a, b)
    assert result.p == pytest.approx(p_enumerated)
    assert result.n == 6


def test_wilcoxon_all_zero_differences() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert result.p == 1.0
    assert result.difference == Interval(0.0, 0.0, 0.0, 3)


def test_paired_nan_pairs_dropped() -> None:
    # pairs 1 (NaN in a) and 2 (NaN in b) go; d = 1, 3, 4, 5, 6 -> all positive, n = 5
    # -> p = 2/32 = 0.0625 as above
    a = [11, nan, 12, 13, 14, 15, 16]
    b = [10, 10, nan, 10, 10, 10, 10]
    result = paired_test(a, b)
    assert result.n == 5
    assert result.difference.n == 5
    assert result.p == pytest.approx(0.0625)


def test_paired_no_pairs() -> None:
    result = paired_test([nan, 1.0], [2.0, nan])
    assert result.n == 0
    assert math.isnan(result.p)
    assert str(result.difference) == "-"


def test_paired_length_mismatch() -> None:
    with pytest.raises(ValueError, match=r"a has 3 values.*b has 4 values"):
        paired_test([1, 2, 3], [1, 2, 3, 4])


def test_paired_unknown_method() -> None:
    with pytest.raises(ValueError, match=r"'ttest'.*wilcoxon, permutation"):
        paired_test([1, 2], [2, 1], method="ttest")


# ----------------------------------------------------------------------------- permutation


def test_permutation_exact_against_enumeration() -> None:
    a = [11, 13, 8, 14]
    b = [10, 10, 10, 10]
    d = np.array([1, 3, -2, 4], dtype=float)  # observed mean difference 6/4 = 1.5
    null = [float(np.mean(np.array(s) * d)) for s in itertools.product((1, -1), repeat=4)]
    # |sum| >= 6 <=> negated subset sums to <= 2 ({}, {1}, {2}) or >= 8 ({1,2,3,4},
    # {2,3,4}, {1,3,4}): 6 of 16 -> p = 0.375
    p_enumerated = sum(abs(t) >= 1.5 - 1e-12 for t in null) / 16
    assert p_enumerated == pytest.approx(0.375)
    for seed in (0, 1):  # exact: the seed does not matter
        result = paired_test(a, b, method="permutation", seed=seed)
        assert result.method == "permutation"
        assert result.n == 4
        assert result.p == pytest.approx(p_enumerated)
        assert result.difference.mean == pytest.approx(1.5)


def test_permutation_single_pair_and_zero() -> None:
    assert paired_test([2.0], [1.0], method="permutation").p == 1.0
    assert paired_test([1.0, 2.0], [1.0, 2.0], method="permutation").p == 1.0


# ----------------------------------------------------------------------------- mean_interval


def test_mean_interval_empty_and_single() -> None:
    empty = mean_interval([nan, nan])
    assert empty.n == 0
    assert math.isnan(empty.mean) and math.isnan(empty.low) and math.isnan(empty.high)
    assert str(empty) == "-"
    assert mean_interval([nan, 0.7]) == Interval(0.7, 0.7, 0.7, 1)


def test_mean_interval_constant() -> None:
    assert mean_interval([0.4, 0.4, 0.4, nan]) == Interval(0.4, 0.4, 0.4, 3)


TABLE = [0.72, 0.81, 0.78, 0.85, 0.76, 0.88]  # mean = 4.80 / 6 = 0.80


def test_mean_interval_table_matches_percentile_bootstrap() -> None:
    interval = mean_interval(TABLE, n_resamples=9999, seed=0)
    assert interval.n == 6
    assert interval.mean == pytest.approx(0.80)
    assert min(TABLE) <= interval.low < interval.mean < interval.high <= max(TABLE)
    # percentile bootstrap by hand: 9999 resamples of 6 with replacement, 2.5/97.5 %
    x = np.array(TABLE)
    rng = np.random.default_rng(0)
    means = x[rng.integers(0, x.size, size=(9999, x.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    assert interval.low == pytest.approx(low, abs=0.02)
    assert interval.high == pytest.approx(high, abs=0.02)
    # and it is SciPy's BCa interval for the same seed (not the percentile one above)
    bca = sp.bootstrap((x,), np.mean, method="BCa", random_state=np.random.default_rng(0))
    assert (interval.low, interval.high) == pytest.approx(tuple(bca.confidence_interval))
    # a narrower confidence gives a narrower interval
    narrow = mean_interval(TABLE, confidence=0.5)
    assert interval.low < narrow.low < narrow.high < interval.high


def test_mean_interval_deterministic_per_seed() -> None:
    assert mean_interval(TABLE, seed=3) == mean_interval(TABLE, seed=3)


def test_mean_interval_fallback_is_silent() -> None:
    # precondition: BCa itself fails (NaN, DegenerateDataWarning) on this 2-value sample
    tiny = np.array([1e-300, 2e-300])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bca = sp.bootstrap((tiny,), np.mean, method="BCa", random_state=np.random.default_rng(0))
    assert caught and math.isnan(bca.confidence_interval.low)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fallback = mean_interval(tiny)
        plain = mean_interval([0.8, 0.9])
    # percentile bootstrap of two values spans them
    assert (fallback.low, fallback.high) == pytest.approx((1e-300, 2e-300), rel=1e-9, abs=0)
    assert (plain.low, plain.high) == pytest.approx((0.8, 0.9))


def test_interval_str() -> None:
    assert str(Interval(0.8123, 0.79, 0.8333, 5)) == "0.812 [0.790, 0.833]"
    assert Interval(0.8123, 0.79, 0.8333, 5).format(2) == "0.81 [0.79, 0.83]"
    assert str(Interval(0.5, nan, nan, 1)) == "0.500 [-, -]"
    assert str(Interval(nan, nan, nan, 0)) == "-"


# ----------------------------------------------------------------------------- marks


@pytest.mark.parametrize(
    ("p", "difference", "alpha", "mark"),
    [
        (0.01, 0.02, 0.05, BETTER),
        (0.01, -0.02, 0.05, WORSE),
        (0.05, 0.02, 0.05, ""),  # not below alpha
        (0.07, 0.02, 0.10, BETTER),
        (nan, 0.02, 0.05, ""),
        (0.01, 0.0, 0.05, ""),
    ],
)
def test_significance_mark(p: float, difference: float, alpha: float, mark: str) -> None:
    assert significance_mark(p, difference, alpha) == mark
