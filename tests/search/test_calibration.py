"""``losslab.analysis.calibration``: rank agreement of fidelities on scripted results."""

from __future__ import annotations

import math

import pytest

from losslab.analysis.calibration import Observation, analyse, seed_means, separated_share

TOP = [0.1, 0.2, 0.3, 0.4, 0.5]  # five candidates, c0 worst ... c4 best at the top fidelity


def _observations(fidelity: str, means: list[float], seeds: int = 3, jitter: float = 0.002):
    """One observation per candidate and seed: ``means`` plus a small seed-dependent offset
    that keeps every candidate's order on every seed."""
    return [
        Observation(f"c{i}", fidelity, seed, m + jitter * (seed - 1) * (1 + i % 2))
        for i, m in enumerate(means)
        for seed in range(seeds)
    ]


def test_exact_correlations_of_one_swapped_pair_against_the_top():
    # c3 and c4 swap places at the cheap fidelity: rho = 1 - 6 * 2 / (5 * 24) = 0.9,
    # tau = (9 concordant - 1 discordant) / 10 = 0.8; exact p over the 120 orderings.
    cheap = [0.1, 0.2, 0.3, 0.5, 0.4]
    report = analyse(
        _observations("cheap", cheap) + _observations("top", TOP),
        ["cheap", "top"],
        {"cheap": 1.0, "top": 8.0},
    )
    row = report.row("cheap")
    assert row.spearman.rho == pytest.approx(0.9)
    assert row.kendall.rho == pytest.approx(0.8)
    assert row.spearman.n == row.candidates == 5
    # |rho| >= 0.9 happens for 5 of the 120 orderings on each side: p = 10 / 120.
    assert row.spearman.p == pytest.approx(10 / 120)
    assert row.spearman.p_method == "exact"
    assert row.spearman.low < 0.9 < row.spearman.high <= 1.0
    assert report.recommended == "cheap"  # 0.9 >= 0.8
    assert report.ranks["cheap"]["c3"] == 1.0 and report.ranks["top"]["c4"] == 1.0


def test_recommends_the_cheapest_fidelity_that_reaches_the_threshold_by_cost():
    reversed_order = list(reversed(TOP))  # rho = -1
    observations = (
        _observations("a", reversed_order)
        + _observations("b", [0.1, 0.2, 0.3, 0.5, 0.4])  # rho 0.9
        + _observations("c", TOP)  # rho 1.0, but dearer than b
        + _observations("top", TOP)
    )
    costs = {"a": 1.0, "b": 3.0, "c": 5.0, "top": 9.0}
    report = analyse(observations, ["a", "b", "c", "top"], costs)
    assert report.row("a").spearman.rho == pytest.approx(-1.0)
    assert report.recommended == "b"
    # With a stricter threshold only c reaches it.
    assert analyse(observations, ["a", "b", "c", "top"], costs, threshold=0.95).recommended == "c"
    # Costs decide, not the order the ladder lists the fidelities in.
    cheaper_c = {**costs, "c": 2.0}
    assert analyse(observations, ["a", "b", "c", "top"], cheaper_c).recommended == "c"


def test_no_fidelity_reaching_the_threshold_recommends_none():
    observations = (
        _observations("a", [0.3, 0.1, 0.5, 0.2, 0.4])  # rho 0.3
        + _observations("b", [0.3, 0.1, 0.2, 0.5, 0.4])  # rho 0.6
        + _observations("top", TOP)
    )
    report = analyse(observations, ["a", "b", "top"], {"a": 1.0, "b": 2.0, "top": 4.0})
    assert report.recommended is None
    assert report.row("a").spearman.rho == pytest.approx(0.3)
    assert report.row("b").spearman.rho == pytest.approx(0.6)
    assert report.top == "top" and [r.fidelity for r in report.rows] == ["a", "b", "top"]


def test_the_top_row_measures_the_agreement_of_its_own_seeds():
    noisy = [
        Observation("c0", "top", 0, 0.5),
        Observation("c1", "top", 0, 0.4),
        Observation("c2", "top", 0, 0.3),
        Observation("c0", "top", 1, 0.1),
        Observation("c1", "top", 1, 0.2),
        Observation("c2", "top", 1, 0.3),
    ]
    row = analyse(noisy, ["top"], {"top": 1.0}).rows[0]
    assert row.spearman.rho == pytest.approx(-1.0)  # seed 0 against seed 1: reversed
    # The sd over 2 seeds is |a - b| / sqrt(2), averaged over c0, c1 and c2 (0).
    assert row.spread == pytest.approx((0.4 + 0.2) / 2**0.5 / 3)
    single = analyse([o for o in noisy if o.seed == 0], ["top"], {"top": 1.0}).rows[0]
    assert math.isnan(single.spearman.rho) and math.isnan(single.spread)


def test_separated_share_counts_pairs_whose_difference_exceeds_twice_its_error():
    clear = {"a": {0: 0.50, 1: 0.52, 2: 0.51}, "b": {0: 0.30, 1: 0.31, 2: 0.33}}
    assert separated_share(clear) == 1.0
    tied = {"a": {0: 0.50, 1: 0.30, 2: 0.40}, "b": {0: 0.30, 1: 0.50, 2: 0.41}}
    assert separated_share(tied) == 0.0
    # A noisy third candidate is separated from neither: one pair of three.
    assert separated_share({**clear, "c": tied["a"]}) == pytest.approx(1 / 3)
    assert math.isnan(separated_share({"a": {0: 0.5}, "b": {0: 0.4}}))  # one seed: no test


def test_failed_runs_are_left_out_and_means_use_the_seeds_that_finished():
    observations = [
        Observation("c0", "top", 0, 0.2),
        Observation("c0", "top", 1, math.nan),
        Observation("c1", "top", 0, 0.4),
    ]
    assert seed_means(observations, "top") == {"c0": 0.2, "c1": 0.4}
    assert analyse(observations, ["top"], {"top": 1.0}).rows[0].evaluations == 2


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="not in the ladder: elsewhere"):
        analyse([Observation("c0", "elsewhere", 0, 0.1)], ["top"], {})
    with pytest.raises(ValueError, match="threshold"):
        analyse([], ["top"], {}, threshold=1.5)
    with pytest.raises(ValueError, match="at least one fidelity"):
        analyse([], [], {})


def test_a_top_fidelity_the_cap_left_empty_gives_no_correlation_and_no_recommendation():
    report = analyse(_observations("cheap", TOP), ["cheap", "top"], {"cheap": 1.0})
    assert report.recommended is None
    assert all(math.isnan(r.spearman.rho) for r in report.rows)
    assert report.row("cheap").candidates == 0 and report.row("top").evaluations == 0
