"""A study of a few trials on the tiny phantom: MLflow and Optuna agree, reruns repeat nothing,
a candidate whose loss blows up fails alone, and Hyperband prunes."""

from __future__ import annotations

import dataclasses
import math

import optuna
import pytest
from optuna.trial import TrialState

import losslab.training.setup as training_setup
from losslab.search import StudyMismatch, load_study, run_study
from losslab.search.store.storage import open_storage
from losslab.tracking.tracker import Tracker

from .studies import BASE, write_study


def _runs(config, role: str | None = None):
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    runs = tracker.find_runs()
    if role is not None:
        runs = [r for r in runs if r.tags.get("losslab.role") == role]
    return runs


def _trials(config):
    study = optuna.load_study(study_name=config.name, storage=open_storage(config.storage))
    return study.get_trials(deepcopy=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One study of three trials and a baseline, run once for the tests of this module."""
    folder = tmp_path_factory.mktemp("study")
    config = load_study(write_study(folder))
    return config, run_study(config, progress=False)


def test_study_finishes_its_trials_and_baselines(finished):
    config, outcome = finished
    assert len(outcome.records) == 3
    assert [b.candidate.name for b in outcome.baselines] == ["dice"]
    assert outcome.baselines[0].result.ok
    assert all(r.status == "ok" and 0 <= r.value <= 1 for r in outcome.records)
    # Every evaluation that trained is one nested run; the trials link to theirs.
    trials = _runs(config, "trial")
    trained = [r for r in outcome.records if not r.cached_from]
    assert sorted(r.run_id for r in trials) == sorted(r.run_id for r in trained)
    assert outcome.trained == len(trained) + 1  # + the baseline


def test_mlflow_parent_holds_config_and_best(finished):
    config, outcome = finished
    (parent,) = _runs(config, "study")
    assert parent.status == "FINISHED"
    best = outcome.best(1)[0]
    assert best.value == max(r.value for r in outcome.records)
    # The study's best run: the best trial's, or the baseline's when it beats every trial.
    beaten_by = outcome.beaten_by()
    winner = best.run_id if beaten_by is None else beaten_by.run_id
    assert (beaten_by is None) == (best.value >= outcome.baselines[0].value)
    assert parent.tags["losslab.best_run_id"] == winner
    tagged = [r.run_id for r in _runs(config) if r.tags.get("losslab.best") == "true"]
    assert tagged == [winner]
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    artifacts = [a.path for a in tracker.client.list_artifacts(parent.run_id)]
    assert "study.yaml" in artifacts and "best_trial.json" in artifacts
    assert ("best_candidate.json" in artifacts) == (beaten_by is None)
    for run in _runs(config, "trial"):
        assert run.tags["mlflow.parentRunId"] == parent.run_id
        assert run.tags["losslab.eval_key"]
        assert "objective" in run.metrics


def test_optuna_trials_carry_their_evaluation(finished):
    config, outcome = finished
    trials = _trials(config)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    for trial, record in zip(trials, outcome.records):
        assert trial.user_attrs["losslab.mlflow_run_id"] == record.run_id
        assert trial.value == pytest.approx(record.value)
        assert record.candidate.key  # rebuilt from the stored JSON


def test_rerun_continues_without_repeating(finished, tmp_path):
    config, first = finished
    again = run_study(config, progress=False)
    assert again.trained == 0
    assert [r.run_id for r in again.records] == [r.run_id for r in first.records]
    assert len(_runs(config, "study")) == 1  # the same parent run
    more = run_study(load_study(write_study(tmp_path.parent / tmp_path.name)), progress=False)
    assert more.parent_run_id != first.parent_run_id  # another store: another study


def test_same_name_other_space_is_refused(finished, tmp_path):
    config, _ = finished
    other = dict(BASE["space"], loss={"dice": {}, "tversky": {"alpha": {"float": [0.1, 0.9]}}})
    path = write_study(tmp_path, space=other)
    changed = dataclasses.replace(load_study(path), storage=config.storage)
    with pytest.raises(StudyMismatch, match="different configuration"):
        run_study(changed, progress=False)


def test_nan_candidate_fails_alone(tmp_path, monkeypatch):
    # The loss language keeps every value finite, so the candidate that blows up is made so
    # here: the one loss written with the constant 1234.5 returns NaN.
    compile_terms = training_setup.compile_terms

    def nan_for_blowup(terms):
        compiled = compile_terms(terms)
        if "1234.5" not in str(terms[0]):
            return compiled
        return lambda *args: [value * math.nan for value in compiled(*args)]

    monkeypatch.setattr(training_setup, "compile_terms", nan_for_blowup)
    space = {
        "loss": {
            "dice": {},
            "blowup": {"loss": "vmean(z) * 1234.5"},
        },
        "train": {"lr": {"float": [1.0e-3, 1.0e-2], "log": True}},
    }
    config = load_study(
        write_study(
            tmp_path,
            space=space,
            budget={"trials": 6},
            baselines=[],
            optuna={"sampler": {"name": "random", "seed": 3}},
        )
    )
    outcome = run_study(config, progress=False)
    failed = [r for r in outcome.records if r.status == "failed"]
    ok = [r for r in outcome.records if r.status == "ok"]
    assert failed and ok, [(r.candidate.name, r.status) for r in outcome.records]
    assert all(r.candidate.name == "blowup" for r in failed)
    assert all("non-finite" in r.reason for r in failed)
    states = {t.number: t.state for t in _trials(config)}
    assert all(states[r.number] == TrialState.FAIL for r in failed)
    runs = {r.run_id: r for r in _runs(config, "trial")}
    for record in failed:
        if not record.cached_from:
            assert runs[record.run_id].status == "FAILED"
            assert "non-finite" in runs[record.run_id].tags["failure_reason"]
    assert not any(math.isnan(r.value) for r in ok)


def test_hyperband_prunes(tmp_path):
    space = {
        "loss": {"dice": {}, "focal": {"gamma": {"float": [0.5, 4.0]}}},
        "train": {"lr": {"float": [1.0e-6, 3.0e-2], "log": True}},
    }
    config = load_study(
        write_study(
            tmp_path,
            space=space,
            budget={"trials": 8},
            baselines=[],
            fidelity={"epochs": 4, "steps_per_epoch": 2},
            optuna={
                "sampler": {"name": "random", "seed": 0},
                "pruner": {"name": "hyperband", "min_resource": 1, "reduction_factor": 3},
            },
        )
    )
    outcome = run_study(config, progress=False)
    pruned = [r for r in outcome.records if r.status == "pruned"]
    assert pruned, [(r.status, r.value) for r in outcome.records]
    states = {t.number: t for t in _trials(config)}
    runs = {r.run_id: r for r in _runs(config, "trial")}
    for record in pruned:
        trial = states[record.number]
        assert trial.state == TrialState.PRUNED
        assert max(trial.intermediate_values) < config.fidelity.epochs
        if not record.cached_from:
            assert runs[record.run_id].status == "KILLED"
            assert runs[record.run_id].tags["status"] == "pruned"
