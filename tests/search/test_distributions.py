"""Parameter distributions: their YAML form, its errors, and drawing from real Optuna trials."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.trial import FixedTrial

from losslab.search.distributions import (
    Choice,
    Constant,
    FloatRange,
    IntRange,
    parse_distribution,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def trials(n: int, seed: int = 0):
    """``n`` trials of a real in-memory study with a seeded random sampler."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed))
    for _ in range(n):
        trial = study.ask()
        yield trial
        study.tell(trial, 0.0)


# --- parsing -----------------------------------------------------------------------------------


def test_float_range():
    dist = parse_distribution({"float": [0.5, 4]})
    assert dist == FloatRange(0.5, 4.0, log=False, step=None)
    assert isinstance(dist.high, float)
    assert dist.values() == [0.5, 4.0] and dist.searched


def test_float_log_and_step():
    assert parse_distribution({"float": [1e-4, 1e-2], "log": True}) == FloatRange(
        1e-4, 1e-2, log=True
    )
    assert parse_distribution({"float": [0.0, 1.0], "step": 0.05}) == FloatRange(
        0.0, 1.0, step=0.05
    )


def test_int_range_keeps_integers():
    dist = parse_distribution({"int": [1, 5]})
    assert dist == IntRange(1, 5, log=False, step=1)
    assert type(dist.low) is int and type(dist.high) is int
    # Integral floats are accepted as int bounds.
    assert parse_distribution({"int": [2.0, 8.0], "step": 2}) == IntRange(2, 8, step=2)
    assert parse_distribution({"int": [1, 64], "log": True}) == IntRange(1, 64, log=True)


def test_choice_keeps_order_and_types():
    dist = parse_distribution({"choice": ["uniform", "tcf", 3]})
    assert dist == Choice(("uniform", "tcf", 3))
    assert dist.values() == ["uniform", "tcf", 3] and dist.searched


@pytest.mark.parametrize("value", [0.9, 3, "cbs", True, None])
def test_scalar_is_a_constant(value):
    dist = parse_distribution(value)
    assert dist == Constant(value)
    assert dist.values() == [value]
    assert not dist.searched


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"float": [1.0, 1.0]}, "low < high"),
        ({"float": [2.0, 1.0]}, "low < high"),
        ({"int": [5, 1]}, "low < high"),
        ({"float": [0.0, 1.0], "log": True}, "low > 0"),
        ({"float": [-1.0, 1.0], "log": True}, "low > 0"),
        ({"int": [0, 8], "log": True}, "low > 0"),
        ({"choice": []}, "non-empty list"),
        ({"choice": "dice"}, "non-empty list"),
        ({"choice": ["a", "b"], "log": True}, "takes no 'log'"),
        ({"int": [1.5, 3]}, "must be integers"),
        ({"int": [1, 3.5]}, "must be integers"),
        ({"float": [1e-3, 1e-1], "log": True, "step": 0.01}, "cannot be combined"),
        ({"float": [0.0, 1.0], "step": 0}, "'step' must be > 0"),
        ({"float": [0.0, 1.0], "step": -0.1}, "'step' must be > 0"),
        ({"float": [0.0, 1.0], "log": "yes"}, "true or false"),
        ({"float": [0.0]}, "[low, high]"),
        ({"float": [0.0, "one"]}, "must be a number"),
        ({"float": [False, 1.0]}, "must be a number"),
        ({"float": [0.0, 1.0], "int": [0, 1]}, "exactly one"),
        ({"log": True}, "exactly one"),
        ({}, "exactly one"),
    ],
)
def test_bad_distribution(raw, message):
    with pytest.raises(ValueError) as info:
        parse_distribution(raw)
    assert message in str(info.value)


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="unknown key 'lgo'"):
        parse_distribution({"float": [0.1, 1.0], "lgo": True})


def test_list_without_choice_suggests_the_fix():
    with pytest.raises(ValueError) as info:
        parse_distribution(["uniform", "cbs"])
    assert "not a distribution" in str(info.value)
    assert "choice" in str(info.value)


@pytest.mark.parametrize("step", [0.5, 2.5])
def test_int_with_a_fractional_step_is_an_error(step):
    with pytest.raises(ValueError):
        parse_distribution({"int": [0, 10], "step": step})


def test_infinite_bound_is_an_error():
    with pytest.raises(ValueError):
        parse_distribution({"float": [0.0, math.inf]})


# --- suggest -----------------------------------------------------------------------------------


def test_suggest_on_a_fixed_trial_reads_the_parameter_by_name():
    trial = FixedTrial({"loss.focal.gamma": 1.25, "epochs": 4, "loss": "dice"})
    assert parse_distribution({"float": [0.5, 4.0]}).suggest(trial, "loss.focal.gamma") == 1.25
    assert parse_distribution({"int": [1, 5]}).suggest(trial, "epochs") == 4
    assert parse_distribution({"choice": ["dice", "focal"]}).suggest(trial, "loss") == "dice"
    # A constant asks nothing of the trial: the name is not among its parameters.
    assert parse_distribution(0.9).suggest(trial, "not.there") == 0.9


def test_suggest_on_a_fixed_trial_without_the_name_fails():
    with pytest.raises(ValueError):
        parse_distribution({"float": [0.5, 4.0]}).suggest(FixedTrial({}), "gamma")


def test_suggest_float_stays_in_range():
    plain = parse_distribution({"float": [0.5, 4.0]})
    logged = parse_distribution({"float": [1e-4, 1e-2], "log": True})
    for trial in trials(30):
        x, y = plain.suggest(trial, "x"), logged.suggest(trial, "y")
        assert 0.5 <= x <= 4.0
        assert 1e-4 <= y <= 1e-2
        assert trial.params == {"x": x, "y": y}


def test_suggest_float_on_a_grid():
    dist = parse_distribution({"float": [0.0, 1.0], "step": 0.25})
    seen = {dist.suggest(trial, "x") for trial in trials(40)}
    assert seen <= {0.0, 0.25, 0.5, 0.75, 1.0}
    assert len(seen) > 1


def test_suggest_int_stays_in_range_and_on_step():
    dist = parse_distribution({"int": [2, 10], "step": 2})
    seen = {dist.suggest(trial, "n") for trial in trials(40)}
    assert all(type(v) is int for v in seen)
    assert seen <= {2, 4, 6, 8, 10}
    assert len(seen) > 1


def test_suggest_choice_draws_only_the_options():
    dist = parse_distribution({"choice": ["uniform", "tcf", "cbs"]})
    seen = {dist.suggest(trial, "s") for trial in trials(40)}
    assert seen == {"uniform", "tcf", "cbs"}


def test_optuna_records_the_distribution():
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    parse_distribution({"float": [1e-4, 1e-2], "log": True}).suggest(trial, "lr")
    parse_distribution({"int": [1, 9], "step": 2}).suggest(trial, "k")
    lr, k = trial.distributions["lr"], trial.distributions["k"]
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-2, True)
    assert (k.low, k.high, k.step) == (1, 9, 2)
