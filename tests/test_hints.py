"""Close-name suggestions."""

from __future__ import annotations

import pytest

from losslab.hints import did_you_mean, unknown_key


@pytest.mark.parametrize(
    ("word", "options", "expected"),
    [
        ("fidelty", ["fidelity", "final", "seed"], "fidelity"),
        ("diceCE", ["dice", "dice_ce", "ce"], "dice_ce"),
        ("Focal", ["focal", "tversky"], "focal"),
        ("epoch", ["epochs", "lr"], "epochs"),
        ("steps", ["steps_per_epoch", "epochs", "val_every"], "steps_per_epoch"),
    ],
)
def test_the_closest_name_is_suggested(word, options, expected):
    assert did_you_mean(word, options) == f"did you mean '{expected}'? "


def test_nothing_is_suggested_for_a_far_name():
    assert did_you_mean("zzz", ["dice", "ce"]) == ""


def test_unknown_key_lists_the_known_sorted():
    assert unknown_key("lrr", ["seed", "lr"]) == "unknown key; did you mean 'lr'? known: lr, seed"
