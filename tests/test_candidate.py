from __future__ import annotations

import pytest

from losslab.candidate import Candidate, ScheduleSpec
from losslab.losses import LossSyntaxError, get_loss


def test_json_round_trip_and_key():
    candidate = Candidate.from_loss(
        "dice_focal", gamma=3, class_schedule=ScheduleSpec.of("cbs", zeta=0.1, cap=2.0)
    )
    again = Candidate.from_json(candidate.to_json())
    assert again == candidate and again.key == candidate.key
    assert candidate.terms == get_loss("dice_focal", gamma=3).terms
    assert candidate.term_weights == (1.0, 1.0)


def test_key_ignores_the_name_but_not_the_objective():
    a = Candidate.from_loss("dice", name="a")
    assert a.key == Candidate.from_loss("dice", name="b").key
    assert a.key != Candidate.from_loss("dice", eps=1e-3).key
    assert a.key != Candidate.from_loss("dice", class_schedule=ScheduleSpec.of("tcf")).key


def test_expression_and_bad_input():
    candidate = Candidate.from_loss("1 - vsum(p * y) / vsum(y)")
    assert candidate.terms[0].expression == "1 - vsum(p * y) / vsum(y)"
    with pytest.raises(KeyError, match="unknown loss 'dicee'"):
        Candidate.from_loss("dicee")
    with pytest.raises(LossSyntaxError, match="unknown name 'q'"):
        Candidate.from_loss("vmean(q)")
    with pytest.raises(ValueError, match="2 terms but 1 term weights"):
        Candidate(terms=get_loss("dice_ce").terms, term_weights=(1.0,))


def test_flat_params_name_every_field():
    flat = Candidate.from_loss(
        "focal", class_schedule=ScheduleSpec.of("tcf", threshold=0.9)
    ).flat_params()
    assert flat["loss"].endswith("gamma=2") and flat["loss.gamma"] == "2"
    assert flat["class_schedule"] == "tcf"
    assert flat["class_schedule.threshold"] == "0.9"
    assert flat["class_schedule.frozen_weight"] == "0.1"  # a default, logged too


LEARNED = "lossnet:" + "ab" * 32


def test_a_learned_term_round_trips_through_json_and_keys_its_hash():
    candidate = Candidate.from_loss(
        LEARNED, name="ml3-0", class_schedule=ScheduleSpec.of("cbs", zeta=0.1, cap=2.0)
    )
    assert candidate.to_dict()["terms"] == [LEARNED]
    again = Candidate.from_json(candidate.to_json())
    assert again == candidate and again.key == candidate.key
    assert str(again.terms[0]) == LEARNED and again.loss_parameters() == {"weight0": 1.0}
    other = Candidate.from_loss("lossnet:" + "ab" * 31 + "ac", name="ml3-0")
    assert other.key != Candidate.from_loss(LEARNED, name="ml3-0").key  # the weights are the key
    dice = str(get_loss("dice"))
    mixed = Candidate.from_dict({"terms": [dice, LEARNED], "term_weights": [1.0, 0.5]})
    assert Candidate.from_json(mixed.to_json()).key == mixed.key
    assert [str(t) for t in mixed.terms][1] == LEARNED


def test_earlier_candidates_keep_their_keys():
    """Keys recorded before learned terms existed (caches and ledgers hold them)."""
    assert Candidate.from_loss("dice_ce").key == "8e35748c4b8accd7"
    assert Candidate.from_loss("focal").key == "ecaa4f2d31039fc5"
    cbs = Candidate.from_loss("dice", class_schedule=ScheduleSpec.of("cbs"))
    assert cbs.key == "d00c5490308ab8b3"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lossnet:abc", "64 lower-case hex digits"),
        ("lossnet:" + "AB" * 32, "64 lower-case hex digits"),
        ("lossnet:", "64 lower-case hex digits"),
    ],
)
def test_a_malformed_learned_term_is_refused(text, message):
    with pytest.raises(LossSyntaxError, match=message):
        Candidate.from_dict({"terms": [text]})
    with pytest.raises(LossSyntaxError, match=message):
        Candidate.from_loss(text)
    with pytest.raises(ValueError, match="no parameters"):
        Candidate.from_loss(LEARNED, gamma=2.0)


@pytest.mark.parametrize("weight", [1e30, -1e30, float("nan"), float("inf")])
def test_a_term_weight_out_of_range_is_refused(weight):
    terms = Candidate.from_loss("dice_ce").terms
    with pytest.raises(ValueError, match=r"term_weights\[1\]=.* is not within \[-1000, 1000\]"):
        Candidate(terms=terms, term_weights=(1.0, weight))
