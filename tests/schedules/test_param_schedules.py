"""Loss-parameter schedules: the piecewise schedule's values by step, its errors by key, and a
Candidate that holds one (addresses, ranges, JSON round trip, keys of other candidates kept)."""

from __future__ import annotations

import pytest

from losslab.candidate import Candidate, ScheduleSpec
from losslab.losses import resolve_loss
from losslab.schedules import PiecewiseParams, get_param_schedule, list_param_schedules


def test_values_hold_from_their_step_until_the_next():
    schedule = PiecewiseParams(
        steps=[0, 5, 9], values={"beta": [0.7, 0.8, 0.6], "alpha": [1, 2, 3]}
    )
    assert schedule.values_at(4) == {"alpha": 1.0, "beta": 0.7}
    assert schedule.values_at(5) == {"alpha": 2.0, "beta": 0.8}
    assert schedule.values_at(10**6) == {"alpha": 3.0, "beta": 0.6}
    late = PiecewiseParams(steps=[3], values={"beta": [0.9]})
    assert late.values_at(2) == {} and late.values_at(3) == {"beta": 0.9}
    assert list_param_schedules() == ["piecewise"]
    assert get_param_schedule("piecewise", **schedule.get_params()).values == schedule.values


def test_from_trajectory_keeps_only_changes():
    trajectory = [(0, {"b": 0.5}), (2, {"b": 0.5}), (4, {"b": 0.6}), (6, {"b": 0.6})]
    schedule = PiecewiseParams.from_trajectory(trajectory)
    assert schedule.steps == [0, 4] and schedule.values == {"b": [0.5, 0.6]}
    with pytest.raises(ValueError, match="sets"):
        PiecewiseParams.from_trajectory([(0, {"b": 1.0}), (2, {"c": 1.0})])


@pytest.mark.parametrize(
    ("steps", "values", "where"),
    [
        ([], {"b": []}, "piecewise.steps"),
        ([0, 0], {"b": [1, 2]}, "piecewise.steps[1]"),
        ([-1], {"b": [1]}, "piecewise.steps[0]"),
        ([0, 2], {"b": [1]}, "piecewise.values.b"),
        ([0], {"b": [float("nan")]}, "piecewise.values.b[0]"),
        ([0], {}, "piecewise.values"),
    ],
)
def test_a_malformed_schedule_is_named(steps, values, where):
    with pytest.raises(ValueError) as caught:
        PiecewiseParams(steps=steps, values=values)
    assert str(caught.value).startswith(where)


def test_parameters_are_addressed_by_name_or_by_term():
    tversky = Candidate.from_loss("tversky")
    assert tversky.loss_parameters() == {"alpha": 0.3, "beta": 0.7, "eps": 1e-5, "weight0": 1.0}
    compound = Candidate.from_loss("tversky_focal")
    params = compound.loss_parameters()
    assert {"alpha", "beta", "gamma", "weight0", "weight1"} <= set(params)
    dice_ce = Candidate.from_loss("dice_ce")
    assert "eps" in dice_ce.loss_parameters()  # one term uses eps: addressed by its name
    two_eps = Candidate.from_loss([resolve_loss("dice"), resolve_loss("iou")])
    assert {"term0.eps", "term1.eps"} <= set(two_eps.loss_parameters())
    terms, weights = compound.with_loss_parameters({"gamma": 3.0, "weight1": 0.5})
    assert terms[1].parameters["gamma"] == 3.0 and weights == (1.0, 0.5)
    with pytest.raises(ValueError, match="'delta' is not a parameter"):
        compound.with_loss_parameters({"delta": 0.1})
    with pytest.raises(ValueError, match="outside its range"):
        compound.with_loss_parameters({"gamma": 11.0})


def test_a_candidate_with_a_schedule_round_trips_and_others_keep_their_keys():
    plain = Candidate.from_loss("tversky")
    key_before = plain.key
    spec = ScheduleSpec.of("piecewise", steps=[0, 4], values={"beta": [0.7, 0.9]})
    scheduled = Candidate.from_loss("tversky", name="tv /G replay")
    scheduled = Candidate(**{**scheduled.__dict__, "param_schedule": spec})
    assert Candidate.from_json(scheduled.to_json()) == scheduled
    assert scheduled.key != plain.key and Candidate.from_loss("tversky").key == key_before
    assert "param_schedule" not in plain.to_dict()
    assert scheduled.flat_params()["param_schedule"] == "piecewise"


@pytest.mark.parametrize(
    ("values", "match"),
    [({"gamma": [2.0]}, "not a parameter of its loss"), ({"beta": [-1.0]}, "outside its range")],
)
def test_a_schedule_that_does_not_fit_the_loss_is_refused(values, match):
    spec = ScheduleSpec.of("piecewise", steps=[0], values=values)
    with pytest.raises(ValueError, match=match):
        Candidate.from_loss("tversky", name="tv").__class__(
            terms=Candidate.from_loss("tversky").terms, name="tv", param_schedule=spec
        )
