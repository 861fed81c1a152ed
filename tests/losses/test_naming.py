"""Labels of loss terms: library names whatever their parameters, else the position."""

from __future__ import annotations

from losslab.candidate import Candidate
from losslab.losses import get_loss, parse_loss
from losslab.losses.naming import term_labels


def test_library_terms_are_named_and_others_numbered() -> None:
    assert term_labels(Candidate.from_loss("dice_ce").terms) == ["dice", "ce"]
    assert term_labels([get_loss("focal", gamma=3.5)]) == ["focal"]  # parameters do not matter
    custom = parse_loss("1 - vsum(p * y) / vsum(p + y)")
    assert term_labels([get_loss("dice"), custom]) == ["dice", "term1"]
    assert term_labels([get_loss("dice"), get_loss("dice", eps=1.0)]) == ["dice#1", "dice#2"]
