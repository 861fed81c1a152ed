"""``check_schedule``: the one validator of class and term schedules in configurations."""

from __future__ import annotations

import pytest

from losslab.candidate import Candidate, ScheduleSpec
from losslab.config import ConfigError, check_schedule, parse_candidate


@pytest.mark.parametrize(
    "name", ["median_frequency", "inverse_frequency", "median_frequency_balancing"]
)
def test_frequency_schedules_need_no_parameters(name):
    check_schedule("class", name, {}, where="x")
    check_schedule("class", name, where="x")


def test_explicit_frequencies_of_any_class_count_are_accepted():
    check_schedule(
        "class", "median_frequency", {"frequencies": [0.7, 0.1, 0.1, 0.05, 0.05]}, where="x"
    )
    check_schedule("class", "inverse_frequency", {"weights": [1.0, 2.0]}, where="x")


@pytest.mark.parametrize(
    ("kind", "name", "params", "where", "problem"),
    [
        (
            "class",
            "tcf",
            {"frozen_weight": 0.2, "treshold": 0.5},
            "s.treshold",
            "unknown parameter",
        ),
        ("class", "tcf", {"frozen_weight": 0.2, "threshold": 1.5}, "s.threshold", "[0, 1]"),
        ("class", "cbs", {"zeta": 0.0}, "s.zeta", "zeta must be finite and > 0"),
        ("class", "cbss", {}, "s", "unknown class schedule 'cbss'"),
        (
            "class",
            "median_frequency",
            {"frequencies": [0.5, 0.5], "weights": [1.0, 1.0]},
            "s.frequencies",
            "at most one",
        ),
        ("class", "median_frequency", {"frequencies": [0.5, -0.1, 0.6]}, "s.frequencies", ">= 0"),
        ("term", "softadapt", {"betta": 0.5}, "s.betta", "valid parameters"),
        ("term", "ramp", {}, "s", "num_terms=2"),
    ],
)
def test_a_bad_schedule_is_named(kind, name, params, where, problem):
    with pytest.raises(ConfigError) as info:
        check_schedule(kind, name, params, num_terms=3, where="s")
    assert info.value.where == where
    assert problem in info.value.problem


def test_term_schedules_are_built_for_the_given_term_count():
    check_schedule("term", "ramp", {"start": 0.1}, num_terms=2, where="x")


def test_kind_must_be_class_or_term():
    with pytest.raises(ValueError, match="kind must be 'class' or 'term'"):
        check_schedule("loss", "dice", where="x")


def test_a_candidate_with_median_frequency_and_no_parameters_validates():
    candidate = parse_candidate(
        {"terms": ["ce", "dice"], "class_schedule": "median_frequency", "term_schedule": "ramp"},
        "c",
    )
    assert candidate.class_schedule.name == "median_frequency"
    with pytest.raises(ConfigError) as info:
        parse_candidate({"loss": "dice", "class_schedule": {"name": "pcf", "delta": 0}}, "c")
    assert info.value.where == "c.class_schedule.delta"


def test_a_candidate_entry_reads_a_candidate_file(tmp_path):
    spec = ScheduleSpec.of("piecewise", steps=[0, 10], values={"beta": [0.7, 0.9]})
    saved = Candidate.from_loss("tversky", name="tv /G replay")
    saved = Candidate(terms=saved.terms, name=saved.name, param_schedule=spec)
    (tmp_path / "c.json").write_text(saved.to_json())
    loaded = parse_candidate({"candidate": str(tmp_path / "c.json"), "name": "replayed"}, "b[0]")
    assert loaded.key == saved.key and loaded.name == "replayed"
    inline = parse_candidate(
        {"loss": "tversky", "param_schedule": {"name": "piecewise", **dict(spec.params)}}, "b[1]"
    )
    assert inline.key == saved.key
    with pytest.raises(ConfigError, match=r"b\[0\]\.loss: a candidate file holds"):
        parse_candidate({"candidate": str(tmp_path / "c.json"), "loss": "dice"}, "b[0]")
    with pytest.raises(ConfigError, match=r"b\[0\]\.candidate: .*missing.json: cannot read"):
        parse_candidate({"candidate": str(tmp_path / "missing.json")}, "b[0]")
