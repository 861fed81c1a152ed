"""The greedy backend in a study: its section is checked by key before anything runs; each
start is trained plain, under the controller and replayed; the replay reproduces the controlled
run at the study's seed; MLflow holds the trajectory. Budget, resume, workers and NaN
candidates are the contract test's (``test_backend_contract.py``)."""

from __future__ import annotations

import json

import pytest

from losslab.config import ConfigError
from losslab.search import load_study, run_study
from losslab.search.greedy.settings import check_settings
from losslab.tracking.tracker import Tracker

from .studies import write_study

TVERSKY = {"loss": {"tversky": {}}}


def _write(folder, **changes):
    return write_study(folder, backend="greedy", **{"space": TVERSKY, **changes})


@pytest.mark.parametrize(
    ("greedy", "space", "where"),
    [
        ({"step": 0}, TVERSKY, "greedy.step"),
        ({"step": 1.0}, TVERSKY, "greedy.step"),
        ({"step": 1.5}, TVERSKY, "greedy.step"),
        ({"every": 0}, TVERSKY, "greedy.every"),
        ({"lookahead": -1}, TVERSKY, "greedy.lookahead"),
        ({"lookahead": 1.5}, TVERSKY, "greedy.lookahead"),
        ({"score": "iou"}, TVERSKY, "greedy.score"),
        ({"evry": 3}, TVERSKY, "greedy.evry"),
        ({"params": ["gamma"]}, TVERSKY, "greedy.params"),
        ({"params": {"focal": ["gamma"]}}, TVERSKY, "greedy.params.focal"),
        ({}, {"loss": {"dice": {}}}, "greedy.params"),  # dice has only eps: nothing to steer
        ({}, {"loss": {"focal": {"gamma": {"float": [1, 3]}}}}, "space.focal.gamma"),
        ({}, {"loss": {"tversky": {}}, "class_schedule": ["uniform", "cbs"]}, "class_schedule"),
    ],
)
def test_bad_settings_and_starts_are_named_before_anything_runs(tmp_path, greedy, space, where):
    path = _write(tmp_path, greedy=greedy, space=space)
    with pytest.raises(ConfigError) as caught:
        run_study(load_study(path), progress=False)
    assert where in str(caught.value)
    assert not (tmp_path / "optuna.log").exists()  # refused before a store was created


def test_settings_take_a_list_or_one_list_per_start():
    assert check_settings({"params": "beta"}).params == ("beta",)
    settings = check_settings({"params": {"tversky": ["alpha", "beta"]}, "every": 3})
    assert settings.params == {"tversky": ("alpha", "beta")} and settings.every == 3


def test_each_start_is_trained_plain_steered_and_replayed(tmp_path):
    path = _write(
        tmp_path,
        greedy={"every": 1, "lookahead": 1, "step": 0.3},
        fidelity={"epochs": 1, "steps_per_epoch": 3},
        budget={"trials": 3},
    )
    config = load_study(path)
    outcome = run_study(config, progress=False)
    roles = {r.params["greedy.role"]: r for r in outcome.records}
    assert sorted(roles) == ["greedy", "replay", "start"]
    assert all(r.status == "ok" for r in outcome.records), [r.reason for r in outcome.records]
    steered, replay = roles["greedy"], roles["replay"]
    assert steered.candidate.key == roles["start"].candidate.key  # same loss, another key:
    assert steered.eval_key != roles["start"].eval_key  # the controller is in the variant
    assert replay.candidate.param_schedule.name == "piecewise"
    assert replay.value == steered.value  # the look-ahead left no trace: the same run
    assert replay.candidate.name == "tversky /G replay"

    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    client = tracker.client
    history = client.get_metric_history(steered.run_id, "param/beta")
    assert [m.step for m in history] == [0, 1, 2]
    artifacts = [a.path for a in client.list_artifacts(steered.run_id)]
    assert "greedy_trajectory.json" in artifacts
    run = client.get_run(steered.run_id)
    assert run.data.tags["greedy.mode"] == "joint"
    assert json.loads(run.data.params["variant.greedy"].replace("'", '"'))["every"] == 1
    again = run_study(config, progress=False)
    assert again.trained == 0
