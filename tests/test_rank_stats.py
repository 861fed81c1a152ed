"""Tests of losslab.stats.ranks: exact small-n p-values against brute-force enumeration.

The null distributions are enumerated here independently of the module (SciPy's rank
coefficients of every ordering, compared with a float tolerance), and the intervals are
checked against the hand formulas written beside them.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sp

from losslab.stats.ranks import (
    RankCorrelation,
    describe_rank_correlation,
    kendall,
    rank_correlation,
    spearman,
)

__all__: list[str] = []

nan = math.nan
Z975 = 1.959964  # normal 97.5 % quantile


def _enumerated_p(x, y, coefficient) -> float:
    """Two-sided permutation p over every ordering of y, by brute force."""
    observed = abs(coefficient(x, y))
    values = [
        abs(coefficient(x, [y[i] for i in order]))
        for order in itertools.permutations(range(len(y)))
    ]
    return sum(v >= observed - 1e-9 for v in values) / len(values)


def _rho(x, y) -> float:
    return float(sp.spearmanr(x, y).statistic)


def _tau(x, y) -> float:
    return float(sp.kendalltau(x, y).statistic)


TABLES = [
    ([1, 2, 3], [1, 2, 3]),
    ([1, 2, 3], [1, 3, 2]),
    ([1, 2, 3, 4], [4, 3, 1, 2]),
    ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]),
    ([0.3, 0.1, 0.9, 0.5, 0.7, 0.2], [0.2, 0.4, 0.8, 0.5, 0.9, 0.1]),
    ([1, 1, 2, 3, 4, 4], [2, 1, 3, 3, 5, 4]),  # ties on both sides
    ([5, 3, 8, 1, 9, 2, 7], [4, 2, 9, 3, 8, 1, 5]),
]


@pytest.mark.parametrize(("x", "y"), TABLES)
def test_spearman_p_is_the_enumerated_permutation_p(x, y) -> None:
    rc = spearman(x, y)
    assert rc.p_method == "exact"
    assert rc.rho == pytest.approx(_rho(x, y))
    assert rc.p == pytest.approx(_enumerated_p(x, y, _rho), abs=1e-12)


@pytest.mark.parametrize(("x", "y"), TABLES)
def test_kendall_p_is_the_enumerated_permutation_p(x, y) -> None:
    rc = kendall(x, y)
    assert rc.statistic == "kendall" and rc.p_method == "exact"
    assert rc.rho == pytest.approx(_tau(x, y))
    assert rc.p == pytest.approx(_enumerated_p(x, y, _tau), abs=1e-12)


def test_three_in_perfect_order_is_p_one_third() -> None:
    # 2 of the 3! orderings (identity, reversal) reach |rho| = 1; SciPy's t approximation
    # says p = 0 here
    for function in (spearman, kendall):
        for y in ([10, 20, 30], [30, 20, 10]):
            rc = function([1, 2, 3], y)
            assert abs(rc.rho) == 1.0
            assert rc.p == pytest.approx(1 / 3)
            assert (rc.low, rc.high) == (-1.0, 1.0)
            assert "exact p=0.33" in str(rc)
    assert sp.spearmanr([1, 2, 3], [10, 20, 30]).pvalue < 0.01  # what this replaces


def test_exact_p_of_five_in_perfect_order() -> None:
    assert spearman(range(5), range(5)).p == pytest.approx(2 / 120)
    assert kendall(range(5), range(5)).p == pytest.approx(2 / 120)


def test_spearman_interval_hand_values() -> None:
    # d = -1, 1, -1, 1, 0 -> rho = 1 - 6 * 4 / (5 * 24) = 0.8
    rc = spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    # Bonett-Wright: var(atanh rho) = (1 + 0.8^2 / 2) / (5 - 3) = 0.66
    half = Z975 * math.sqrt(0.66)
    assert rc.low == pytest.approx(math.tanh(math.atanh(0.8) - half), abs=1e-5)
    assert rc.high == pytest.approx(math.tanh(math.atanh(0.8) + half), abs=1e-5)


def test_kendall_interval_hand_values() -> None:
    # three adjacent swaps: 12 concordant, 3 discordant of 15 pairs -> tau = 9 / 15 = 0.6
    rc = kendall([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
    assert rc.rho == pytest.approx(0.6)
    half = Z975 * math.sqrt(0.437 / (6 - 4))  # Fieller-Hartley-Pearson variance
    assert rc.low == pytest.approx(math.tanh(math.atanh(0.6) - half), abs=1e-5)
    assert rc.high == pytest.approx(math.tanh(math.atanh(0.6) + half), abs=1e-5)
    four = kendall([1, 2, 3, 4], [1, 3, 2, 4])  # variance undefined at n <= 4
    assert (four.low, four.high) == (-1.0, 1.0)


@pytest.mark.parametrize("n", [4, 5, 8, 12])
def test_perfect_rank_has_an_interval_of_positive_width(n: int) -> None:
    up, down = spearman(range(n), range(n)), spearman(range(n), range(n, 0, -1))
    assert up.rho == 1.0 and up.high == 1.0 and up.low < 1.0
    assert down.rho == -1.0 and down.low == -1.0 and down.high > -1.0
    # continuity correction: atanh of the value half way to the next attainable rho
    r_star = 1 - 6 / (n**3 - n)
    half = Z975 * math.sqrt(1.5 / (n - 3))
    assert up.low == pytest.approx(math.tanh(math.atanh(r_star) - half), abs=1e-6)
    assert down.high == pytest.approx(-up.low)
    tau = kendall(range(n), range(n))
    assert tau.rho == 1.0 and tau.high == 1.0 and tau.low < 1.0
    # fewer pairs give wider intervals
    assert spearman(range(n + 1), range(n + 1)).low > up.low


def test_above_the_exact_limit_the_p_is_a_seeded_permutation_estimate() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=11)
    y = x + rng.normal(size=11)
    rc = spearman(x, y, n_resamples=4999)
    assert rc.p_method == "permutation"
    assert rc == spearman(x, y, n_resamples=4999)  # same seed, same p
    # agrees with SciPy's own permutation test within Monte Carlo error
    reference = sp.permutation_test(
        (y,),
        lambda v: sp.spearmanr(x, v).statistic,
        permutation_type="pairings",
        n_resamples=4999,
        random_state=1,
    ).pvalue
    assert rc.p == pytest.approx(reference, abs=0.02)
    # never zero: (1 + hits) / (1 + resamples)
    assert spearman(range(11), range(11), n_resamples=99).p == pytest.approx(1 / 100)
    # the limit is the caller's: 0 samples orderings even for five pairs
    small = spearman([3, 1, 2, 5, 4], [1, 2, 3, 4, 5], exact_max_n=0, n_resamples=99)
    assert small.p_method == "permutation"


def test_too_few_or_constant_and_nan_pairs() -> None:
    for function in (spearman, kendall):
        for x, y in (([1, 2], [2, 1]), ([1, 2, 3], [5, 5, 5])):
            rc = function(x, y)
            assert math.isnan(rc.rho) and math.isnan(rc.low) and math.isnan(rc.p)
            assert rc.p_method == ""
        rc = function([1, 2, nan, 3, 4, 5, 6], [2, 1, 9, 4, 3, 5, nan])
        assert rc.n == 5
        assert rc.rho == pytest.approx(function([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]).rho)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="must be paired"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="confidence"):
        kendall([1, 2, 3], [1, 2, 3], confidence=1.0)
    with pytest.raises(ValueError, match="exact_max_n"):
        spearman([1, 2, 3], [1, 2, 3], exact_max_n=12)
    with pytest.raises(ValueError, match="unknown rank statistic 'pearson'"):
        rank_correlation([1, 2, 3], [1, 2, 3], statistic="pearson")
    assert rank_correlation([1, 2, 3], [1, 3, 2], statistic="kendall").statistic == "kendall"


def test_str_and_name() -> None:
    assert str(RankCorrelation(0.4, -0.55, 0.89, 0.5, 5)) == "0.40 [-0.55, 0.89] (n=5, p=0.50)"
    rc = RankCorrelation(0.4, -0.55, 0.89, 0.004, 5, "kendall", "exact")
    assert str(rc) == "0.40 [-0.55, 0.89] (n=5, exact p<0.01)"
    assert rc.name == "Kendall's tau"


def test_describe_rank_correlation_bands() -> None:
    well = describe_rank_correlation(RankCorrelation(0.9, 0.6, 0.98, 0.001, 10))
    assert "predicts the final ranking well" in well
    weak = describe_rank_correlation(RankCorrelation(0.5, 0.1, 0.8, 0.02, 20))
    assert "weakly" in weak and "does not" not in weak
    low_rho = describe_rank_correlation(RankCorrelation(0.2, 0.05, 0.4, 0.04, 90))
    # rho = 0.8 over 5 candidates: interval (computed above) includes 0
    wide = describe_rank_correlation(spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]))
    for text in (low_rho, wide):
        assert "does not predict" in text
        assert "lengthen fidelity or add seeds" in text
    assert "interval includes 0" in wide
    # a perfect order of three is no evidence: its interval is [-1, 1]
    three = describe_rank_correlation(spearman([1, 2, 3], [1, 2, 3]))
    assert "does not predict" in three and "exact p=0.33" in three
    assert describe_rank_correlation(kendall(range(8), range(8))).startswith("Kendall's tau")
    few = describe_rank_correlation(spearman([1, 2], [2, 1]))
    assert "too few candidates to say" in few.lower()
    for text in (well, weak, low_rho, wide, few):  # one sentence each
        assert text.endswith(".") and ". " not in text
