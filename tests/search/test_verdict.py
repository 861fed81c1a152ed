"""The verdict of a study and the racing at its top rung, on scripted per-case Dice values.

The p-values are exact Wilcoxon values computed by hand: ``n`` paired differences, all of one
sign and distinct, give the two-sided ``p = 2 / 2**n`` (6 pairs: 0.03125; 12 pairs: 0.000488).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from losslab.search.verdict import Contender, case_objective, decide, race_losers
from losslab.stats import hierarchical_interval, mean_interval

nan = math.nan
CLASSES = ["background", "spleen", "liver"]
WINNER = "trial 12 `tversky(alpha=0.21) + cbs`"


def _base(seeds: int, cases: int, classes: int = 3) -> np.ndarray:
    """Reference Dice values ``[seeds, cases, classes]`` in [0.55, 0.85], fixed."""
    rng = np.random.default_rng(7)
    return rng.uniform(0.55, 0.85, (seeds, cases, classes))


def _noise(seeds: int, cases: int, scale: float = 0.0008, classes: int = 3) -> np.ndarray:
    """Small distinct positive jitter, so that no two differences tie (exact Wilcoxon)."""
    steps = np.arange(seeds * cases * classes, dtype=float).reshape(seeds, cases, classes)
    return scale * (steps + 1) / steps.size


def _alternating(seeds: int, cases: int, size: float = 0.01, classes: int = 3) -> np.ndarray:
    """Differences of alternating sign and nearly equal size: no shift at all."""
    n = seeds * cases
    signs = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    sizes = size * (1 + np.arange(n) / (10 * n))
    return np.repeat((signs * sizes).reshape(seeds, cases, 1), classes, axis=2)


def contender(
    label: str,
    table: np.ndarray,
    *,
    seeds: list[int] | None = None,
    baseline: bool = False,
    classes: list[str] = CLASSES,
) -> Contender:
    """A contender from a ``[seeds, cases, classes]`` table (seed ids ``seeds`` or 0..)."""
    ids = seeds if seeds is not None else list(range(len(table)))
    dice = {s: [list(map(float, row)) for row in rows] for s, rows in zip(ids, table)}
    return Contender(label, dice, list(classes), baseline=baseline)


def _objective_differences(a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Per seed, the per-case differences of the mean foreground Dice (no NaN here)."""
    return [row.mean(axis=-1) for row in (a[..., 1:] - b[..., 1:])]


# ----------------------------------------------------------------------------- case_objective


def test_case_objective_averages_the_foreground_present_and_keeps_seed_order() -> None:
    c = Contender(
        "x",
        {
            0: [[0.9, 0.8, nan], [0.9, nan, nan], [0.9, 0.6, 0.4]],
            1: [[0.1, 0.2, 0.3]],
        },
        CLASSES,
    )
    # background never counts; an absent class is left out; no foreground at all -> NaN
    got = case_objective(c, [1, 0])
    assert got[0] == pytest.approx(0.25)
    assert got[1] == pytest.approx(0.8)
    assert math.isnan(got[2])
    assert got[3] == pytest.approx(0.5)
    assert got.shape == (4,)
    with pytest.raises(ValueError, match="no seed 5"):
        case_objective(c, [5])


# ----------------------------------------------------------------------------- decide


def test_a_clearly_better_winner_gets_the_exact_sentence() -> None:
    base = _base(3, 4)
    shift = np.zeros_like(base)
    shift[..., 1:] = 0.05
    up = base + shift + _noise(3, 4)
    verdict = decide(contender(WINNER, up), [contender("dice+cbs", base, baseline=True)])
    assert verdict.outcome == "better"
    interval = hierarchical_interval(_objective_differences(up, base), seed=0)
    assert interval.mean == pytest.approx(0.05, abs=0.005)
    assert verdict.sentence == (
        f"{WINNER} beats dice+cbs by +{interval.mean:.3f} mean Dice "
        f"[{interval.low:.3f}, {interval.high:.3f}], p < 0.001, 3 seeds x 4 cases"
    )
    assert verdict.p == pytest.approx(2 / 2**12)
    assert (verdict.seeds, verdict.cases) == (3, 4)
    assert (verdict.winner, verdict.reference) == (WINNER, "dice+cbs")
    # both classes moved up by 0.05 on all 12 pairs: Holm over 2 classes, 2 * 2 / 2**12 < 0.001
    assert verdict.classes == "per class: spleen +0.050 (p < 0.001), liver +0.050 (p < 0.001)"


def test_the_interval_resamples_seeds_not_pooled_cases() -> None:
    base = _base(3, 4)
    up = base.copy()
    up[0, :, 1:] += 0.02  # seeds that differ from each other: wider than a flat interval
    up[1, :, 1:] += 0.06
    up[2, :, 1:] += 0.10
    up += _noise(3, 4)
    verdict = decide(contender(WINNER, up), [contender("dice+cbs", base)])
    hierarchical = hierarchical_interval(_objective_differences(up, base), seed=0)
    flat = mean_interval(np.concatenate(_objective_differences(up, base)), seed=0)
    assert verdict.difference is not None
    got = (verdict.difference.mean, verdict.difference.low, verdict.difference.high)
    assert got == pytest.approx((hierarchical.mean, hierarchical.low, hierarchical.high))
    assert verdict.difference.high - verdict.difference.low > 1.5 * (flat.high - flat.low)


def test_p_shows_two_significant_digits_and_one_seed_is_singular() -> None:
    base = _base(1, 6)
    up = base + 0.03 + _noise(1, 6)
    verdict = decide(contender(WINNER, up), [contender("dice+cbs", base)])
    assert verdict.outcome == "better"
    assert verdict.p == pytest.approx(0.03125)
    assert verdict.sentence.endswith(", p = 0.031, 1 seed x 6 cases")


def test_a_clearly_worse_winner_is_beaten_by_the_baseline() -> None:
    base = _base(3, 4)
    down = base - 0.05 - _noise(3, 4)
    verdict = decide(contender(WINNER, down), [contender("dice+cbs", base)])
    assert verdict.outcome == "worse"
    assert verdict.sentence.startswith(
        f"dice+cbs beats every candidate: the best, {WINNER}, by -0.05"
    )
    assert verdict.sentence.endswith(", p < 0.001, 3 seeds x 4 cases")
    assert verdict.difference is not None and verdict.difference.high < 0


def test_noise_alone_separates_nothing() -> None:
    base = _base(3, 4)
    same = base + _alternating(3, 4)
    verdict = decide(contender(WINNER, same), [contender("dice+cbs", base)])
    assert verdict.outcome == "no difference"
    assert verdict.p > 0.5
    assert verdict.sentence.startswith(
        f"no candidate separated from dice+cbs: the best, {WINNER}, "
    )
    assert verdict.sentence.endswith("3 seeds x 4 cases")
    assert verdict.classes == ""


def test_the_reference_is_the_best_baseline_not_the_first() -> None:
    base = _base(3, 4)
    weak, strong = contender("ce", base - 0.1), contender("dice+cbs", base)
    up = contender(WINNER, base + 0.05 + _noise(3, 4))
    for baselines in ([weak, strong], [strong, weak]):
        verdict = decide(up, baselines)
        assert verdict.reference == "dice+cbs"
        assert " beats dice+cbs by +0.05" in verdict.sentence
    tie = decide(up, [contender("first", base), contender("second", base)])
    assert tie.reference == "first"


def test_holm_across_the_baselines_raises_the_p() -> None:
    base = _base(2, 3)
    up = contender(WINNER, base + 0.03 + _noise(2, 3))
    alone = decide(up, [contender("dice+cbs", base)])
    assert alone.p == pytest.approx(0.03125)  # 6 positive pairs, raw = adjusted
    assert alone.outcome == "better"
    both = decide(up, [contender("dice+cbs", base), contender("ce", base - 0.1)])
    # two raw p of 0.03125: Holm gives 2 * 0.03125 to the smaller (ties: both)
    assert both.reference == "dice+cbs"
    assert both.p == pytest.approx(0.0625)
    assert both.outcome == "no difference"
    assert ", p = 0.062, 2 seeds x 3 cases" in both.sentence


def test_only_the_classes_that_moved_are_listed_in_class_order() -> None:
    names = ["background", "spleen", "liver", "kidney"]
    base = _base(3, 4, classes=4)
    up = base + _alternating(3, 4, classes=4)  # kidney: noise only
    up[..., 1] = base[..., 1] + 0.05 + _noise(3, 4, classes=1)[..., 0]
    up[..., 2] = base[..., 2] - 0.04 - _noise(3, 4, classes=1)[..., 0]
    verdict = decide(
        contender(WINNER, up, classes=names), [contender("dice+cbs", base, classes=names)]
    )
    # Holm over 3 foreground classes: spleen and liver 3 * 2 / 2**12 = 0.00146 each
    assert verdict.classes == "per class: spleen +0.050 (p = 0.0015), liver -0.040 (p = 0.0015)"
    assert "kidney" not in verdict.classes


def test_absent_classes_are_dropped_not_counted_as_zero() -> None:
    base = _base(3, 4)
    up = base + 0.05 + _noise(3, 4)
    base[:, 0, 2] = nan  # liver absent from case 0 of the reference...
    up[:, 0, 2] = nan  # ...and so of the winner (same test case)
    up[1, 2, 2] = nan  # a miss on one side only: that liver pair is dropped
    verdict = decide(contender(WINNER, up), [contender("dice+cbs", base)])
    assert verdict.outcome == "better"
    assert "nan" not in verdict.sentence + verdict.classes
    # the objective of a case averages the classes present; NaN counted as 0 would differ
    present = np.nanmean(up[..., 1:], axis=-1) - np.nanmean(base[..., 1:], axis=-1)
    zeros = np.nan_to_num(up[..., 1:]).mean(-1) - np.nan_to_num(base[..., 1:]).mean(-1)
    assert verdict.difference is not None
    assert verdict.difference.mean == pytest.approx(present.mean())
    assert verdict.difference.mean != pytest.approx(zeros.mean())
    assert verdict.classes.startswith("per class: spleen +0.050 (p < 0.001), liver +0.05")


def test_a_class_absent_everywhere_is_never_listed() -> None:
    base = _base(3, 4)
    base[..., 2] = nan
    up = base + 0.05 + _noise(3, 4)
    verdict = decide(contender(WINNER, up), [contender("dice+cbs", base)])
    assert verdict.outcome == "better"
    assert verdict.classes == "per class: spleen +0.050 (p < 0.001)"


def test_only_the_shared_seeds_are_paired() -> None:
    base = _base(4, 4)
    up = contender(WINNER, base[:3] + 0.05 + _noise(3, 4), seeds=[0, 1, 2])
    ref = contender("dice+cbs", base[1:], seeds=[1, 2, 3])
    verdict = decide(up, [ref])
    assert (verdict.seeds, verdict.cases) == (2, 4)
    assert verdict.sentence.endswith("2 seeds x 4 cases")
    # shared seeds 1, 2: winner's base[1], base[2] against the reference's base[1], base[2]
    assert verdict.difference is not None
    assert verdict.difference.mean == pytest.approx(0.05, abs=0.005)


def test_no_shared_seed_tests_nothing() -> None:
    base = _base(2, 4)
    verdict = decide(
        contender(WINNER, base + 0.2, seeds=[0, 1]), [contender("dice+cbs", base, seeds=[5, 6])]
    )
    assert verdict.outcome == "no difference"
    assert math.isnan(verdict.p)
    assert "no (seed, test case) pair in common" in verdict.sentence


def test_different_test_cases_in_one_seed_are_refused() -> None:
    base = _base(1, 4)
    with pytest.raises(ValueError, match="seed 0: .* has 3 test cases, dice\\+cbs has 4"):
        decide(contender(WINNER, base[:, :3]), [contender("dice+cbs", base)])


def test_the_sentences_when_a_side_is_missing() -> None:
    table = np.full((5, 3, 3), 0.712)
    lone = decide(contender(WINNER, table), [])
    assert lone.sentence == (
        f"{WINNER}: mean Dice 0.712 [0.712, 0.712] over 5 seeds x 3 cases; "
        "no baseline to compare with"
    )
    assert (lone.outcome, lone.reference, lone.difference) == ("no baseline", None, None)
    weak = np.full((2, 3, 3), 0.5)
    weak[..., 2] = nan  # a baseline's mean is over the classes present: 0.5
    none = decide(None, [contender("ce", weak), contender("dice+cbs", table)])
    assert none.sentence == (
        "no candidate finished at the top rung; the best baseline is dice+cbs (mean Dice 0.712)"
    )
    assert (none.outcome, none.winner, none.reference) == ("no candidate", None, "dice+cbs")
    unfinished = Contender(WINNER, {0: []}, CLASSES)
    assert decide(unfinished, [contender("ce", weak)]).reference == "ce"
    nothing = decide(None, [])
    assert nothing.sentence == "nothing finished: no verdict"
    assert nothing.outcome == "no candidate"


def test_to_dict_is_json() -> None:
    base = _base(2, 3)
    verdict = decide(contender(WINNER, base + 0.03 + _noise(2, 3)), [contender("dice+cbs", base)])
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert data["outcome"] == "better"
    assert data["difference"]["mean"] == pytest.approx(verdict.difference.mean)
    assert data["p"] == pytest.approx(0.03125)
    lone = json.loads(json.dumps(decide(None, []).to_dict(), allow_nan=False))
    assert lone["p"] is None and lone["difference"] is None


# ----------------------------------------------------------------------------- race_losers


def test_race_drops_the_worse_racer_keeps_the_tied_one_and_the_best() -> None:
    base = _base(3, 4)
    best = contender("best", base + 0.1)
    tied = contender("tied", base + 0.1 + _alternating(3, 4))
    worse = contender("worse", base + 0.05 - _noise(3, 4))
    for racers in ([best, tied, worse], [worse, tied, best]):
        assert race_losers(racers) == ["worse"]
    assert race_losers([best, tied, worse], seed=3) == race_losers([best, tied, worse], seed=3)


def test_race_holm_across_the_racers() -> None:
    base = _base(1, 6)
    best = contender("best", base + 0.1)
    a = contender("a", base + 0.05 - _noise(1, 6))  # 6 negative pairs: raw p 0.03125
    assert race_losers([best, a]) == ["a"]
    b = contender("b", base + 0.04 - _noise(1, 6))
    assert race_losers([best, a, b]) == []  # two tests: Holm 0.0625 each


def test_a_racer_without_shared_pairs_is_never_eliminated() -> None:
    base = _base(3, 4)
    best = contender("best", base + 0.1)
    far = contender("far", base[:2] - 0.3, seeds=[7, 8])
    worse = contender("worse", base - _noise(3, 4))
    assert race_losers([best, far, worse]) == ["worse"]


def test_a_baseline_can_be_the_best_of_the_race() -> None:
    base = _base(3, 4)
    baseline = contender("dice+cbs", base + 0.1, baseline=True)
    tied = contender("tied", base + 0.1 + _alternating(3, 4))
    worse = contender("worse", base + 0.02 - _noise(3, 4))
    assert race_losers([tied, worse], [baseline]) == ["worse"]
    # without the baseline the best is "tied", and "worse" is still worse than it
    assert race_losers([tied, worse]) == ["worse"]
    # a better baseline makes a racer that was the best of the racers a loser
    lead = contender("lead", base + 0.05 + _noise(3, 4))
    assert race_losers([lead]) == []
    assert race_losers([lead], [baseline]) == ["lead"]
    assert race_losers([]) == []
