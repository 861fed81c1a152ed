"""TCF, PCF and CBS (Willoughby and Voiculescu 2024) on scripted per-class score sequences with hand-computed weights."""

from __future__ import annotations

import math

import pytest
import torch

from losslab.schedules import ClassBoostStrategy, PlateauClassFreezing, ThresholdClassFreezing

from .helpers import at, run

NAN = math.nan
F = 0.1  # frozen weight


def close(actual, expected):
    assert actual == pytest.approx(expected, abs=1e-6)


def test_tcf_freezes_above_threshold_and_unfreezes_when_falling_back():
    tcf = ThresholdClassFreezing(3)
    # class 1: below, above, back below; class 2: above, unscored (keeps), exactly at 0.9 (not >).
    out = run(tcf, [[0.99, 0.5, 0.95], [0.99, 0.95, NAN], [0.99, 0.85, 0.9]])
    close(out[0], [1.0, 1.0, F])
    close(out[1], [1.0, F, F])
    close(out[2], [1.0, 1.0, 1.0])


def test_tcf_background_only_when_asked():
    close(
        ThresholdClassFreezing(2, include_background=True).update(at(1, [0.99, 0.2])).tolist(),
        [F, 1],
    )
    tcf = ThresholdClassFreezing(2, threshold=0.5, frozen_weight=0.3)
    close(tcf.update(at(1, torch.tensor([0.99, 0.6]).tolist())).tolist(), [1.0, 0.3])


# Best class 1: 0.5, 0.6, 0.70, 0.69, 0.68, 0.68 (the DESIGN example); background scores best of all.
BEST = [0.5, 0.6, 0.70, 0.69, 0.68, 0.68]


def design_rows(other=0.3):
    return [[0.99, s, other] for s in BEST]


def test_pcf_design_example_triggers_at_epoch_6_and_not_before():
    pcf = PlateauClassFreezing(3, delta=2, epsilon=0.005)
    out = run(pcf, design_rows())
    for j in range(5):
        close(out[j], [1, 1, 1])
    close(out[5], [1, F, 1])  # window 4..6 peaks at 0.69, best since u=1 is 0.70: gap 0.01 > eps
    assert pcf.frozen == [False, True, False]


def test_pcf_peak_inside_the_delta_window_does_not_trigger():
    pcf = PlateauClassFreezing(3, delta=3, epsilon=0.005)  # window 3..6 still holds 0.70
    close(run(pcf, design_rows())[-1], [1, 1, 1])


def test_pcf_drop_not_above_epsilon_does_not_trigger():
    pcf = PlateauClassFreezing(2, delta=2, epsilon=0.005)
    rows = [[0.9, s] for s in [0.5, 0.6, 0.700, 0.698, 0.697, 0.696]]  # gap 0.002
    close(run(pcf, rows)[-1], [1, 1])
    pcf = PlateauClassFreezing(2, delta=2, epsilon=0.001)  # same scores, gap 0.002 > 0.001
    close(run(pcf, rows)[-1], [1, F])


def test_pcf_two_classes_in_turn_at_least_delta_plus_one_apart_and_frozen_stays_frozen():
    pcf = PlateauClassFreezing(3, delta=2, epsilon=0.005)
    class2 = [0.4, 0.5, 0.6, 0.65, 0.66, 0.66, 0.64, 0.64, 0.64, 0.64]
    class1 = [*BEST, 0.8, 0.8, 0.8, 0.3]  # frozen at 6: no longer a candidate, even when best
    out = run(pcf, [[0.99, a, b] for a, b in zip(class1, class2)])
    close(out[5], [1, F, 1])
    # u = 6: class 2's window [max(j-2, 6), j] equals [6, j] until j = 9, whose window 7..9 peaks
    # at 0.64 while the best since u is 0.66.
    close(out[6], [1, F, 1])
    close(out[7], [1, F, 1])
    close(out[8], [1, F, F])
    close(out[9], [1, F, F])


def test_pcf_nan_scores_carry_no_information():
    pcf = PlateauClassFreezing(2, delta=2, epsilon=0.005)
    rows = [[0.9, s] for s in [0.5, 0.6, 0.70, 0.69, NAN, 0.68]]
    out = run(pcf, rows)
    close(out[4], [1, 1])  # epoch 5 unscored: no trigger
    close(out[5], [1, F])  # window 4..6 holds 0.69, 0.68: still 0.01 below 0.70


def test_pcf_rejects_decreasing_epochs_and_bad_values():
    pcf = PlateauClassFreezing(2)
    pcf.update(at(3, [0.5, 0.5]))
    with pytest.raises(ValueError, match="epoch"):
        pcf.update(at(3, [0.5, 0.5]))
    with pytest.raises(ValueError, match="delta"):
        PlateauClassFreezing(2, delta=0)
    with pytest.raises(ValueError, match="scores"):
        pcf.update(at(4, [0.5]))


def test_cbs_boosts_unfrozen_classes_with_cap_on_trigger_only():
    cbs = ClassBoostStrategy(5, delta=2, epsilon=0.005, zeta=0.1, cap=2.0)
    rows = [[0.99, s, 0.3, 0.3, 0.3] for s in BEST[:5]]
    rows.append([0.99, 0.68, 0.65, 0.15, NAN])
    rows.append([0.99, 0.68, 0.2, 0.2, 0.2])
    out = run(cbs, rows)
    close(out[4], [1, 1, 1, 1, 1])
    # 1 / (0.65 + 0.1) = 4/3; 1 / (0.15 + 0.1) = 4 -> cap 2; NaN keeps 1; background untouched.
    close(out[5], [1, F, 4 / 3, 2.0, 1.0])
    close(out[6], [1, F, 4 / 3, 2.0, 1.0])  # no trigger at 7: weights kept


def test_cbs_zeta_and_cap_are_parameters():
    cbs = ClassBoostStrategy(3, zeta=0.25, cap=1.5)
    out = run(cbs, [[0.9, s, 0.55] for s in BEST])
    close(out[5], [1, F, 1 / 0.8])
    cbs = ClassBoostStrategy(3, zeta=0.25, cap=1.1)
    close(run(cbs, [[0.9, s, 0.55] for s in BEST])[5], [1, F, 1.1])
