"""What SIGKILL leaves, in every backend and in ``losslab compare``: the rerun loses nothing,
trains nothing twice, and leaves MLflow agreeing with the ledger (each counted entry's run
ended with its result; no run RUNNING; the runs of interrupted attempts superseded). A gp study
proposes the same individuals, trial by trial, whether it runs uninterrupted in one process or
another, or is killed and resumed. What is killed runs in a fresh process (``kills.py``)."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from losslab.analysis.comparison import run_comparison
from losslab.analysis.finished import open_finished, resolve_study
from losslab.search import backend_names, load_study, run_study
from losslab.search.evaluation_runs import SUPERSEDED_BY
from losslab.search.store.optuna_store import INTERRUPTED, RUN_ID
from losslab.search.store.storage import open_storage
from losslab.tracking.tracker import Tracker

from . import kills
from .fakes import FakeTrainer
from .studies import write_study
from .test_backend_contract import STUDY_OF

pytestmark = pytest.mark.slow

GP = {
    "backend": "gp",
    "space": {"target": "loss", "seeds": ["dice", "ce", "focal"]},
    "gp": {"population": 4, "generations": 3, "screen_steps": 40},
    "budget": {"trials": 50},
    "baselines": [],
}
_STATUS = {"ok": "FINISHED", "failed": "FAILED", "pruned": "KILLED"}


@pytest.fixture(autouse=True)
def _fresh_fake():
    FakeTrainer.trained, FakeTrainer.fail_every, FakeTrainer.epoch_seconds = [], 0, 0.0
    yield


def _trials(config) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=config.name, storage=open_storage(config.storage))
    return study.get_trials(deepcopy=False)


def _assert_mlflow_agrees(config) -> None:
    """Each counted entry's run is ended with its result (status, final metrics, history);
    nothing is RUNNING; every interrupted attempt of a finished evaluation is superseded."""
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    trials = _trials(config)
    counted = [t for t in trials if t.state.is_finished() and INTERRUPTED not in t.user_attrs]
    assert counted and not [t for t in trials if t.state == TrialState.RUNNING]
    status = {TrialState.COMPLETE: "ok", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}
    for trial in counted:
        if RUN_ID not in trial.user_attrs:  # an invalid draw: failed before anything trained
            assert trial.state == TrialState.FAIL, trial.number
            continue
        run = tracker.run(trial.user_attrs[RUN_ID])
        assert run is not None and run.tags["status"] == status[trial.state], trial.number
        assert run.status == _STATUS[run.tags["status"]], trial.number
        if trial.state == TrialState.COMPLETE:
            assert "test_objective" in run.metrics, trial.number  # logged as the run ends
            assert tracker.client.list_artifacts(run.run_id, "")  # history.json, tables
    runs = tracker.find_runs()
    assert not [r for r in runs if r.status == "RUNNING" and r.tags.get("losslab.role") != "study"]
    done = {r.tags["losslab.eval_key"] for r in runs if r.tags.get("status") in _STATUS}
    stale = [r for r in runs if r.tags.get("status") == "interrupted"]
    assert not [r for r in stale if r.tags["losslab.eval_key"] in done]
    for run in tracker.find_runs(deleted=True):
        assert tracker.run(run.tags[SUPERSEDED_BY]).tags["status"] in _STATUS


def _rows(outcome) -> list:
    """What ``kills.py``'s process prints of a study's records."""
    return [
        [r.params.get("gp.expression") or r.eval_key, r.value, r.status] for r in outcome.records
    ]


def test_a_gp_study_is_the_same_trial_by_trial_in_any_process_and_after_a_kill(tmp_path):
    folders = [tmp_path / name for name in ("a", "b", "killed")]
    for folder in folders:
        folder.mkdir()
    paths = [write_study(folder, **GP) for folder in folders]
    # One uninterrupted run here, one in another process; one killed there and resumed here.
    runs = [kills.start(paths[1], folders[1] / "trace", hash_seed=2)]
    slow = kills.start(paths[2], folders[2] / "trace", hash_seed=3, epoch_seconds=0.3)
    config = load_study(paths[2])

    def in_second_generation() -> bool:
        trials = _trials(config)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        return done >= 5 and any(
            t.state == TrialState.RUNNING and RUN_ID in t.user_attrs for t in trials
        )

    kills.wait_for(slow, in_second_generation)
    second = kills.finish(runs[0])
    first = _rows(run_study(load_study(paths[0]), progress=False, trainer=FakeTrainer))
    trained_before = len(FakeTrainer.trained)
    resumed = _rows(run_study(config, resume=True, progress=False, trainer=FakeTrainer))

    assert len(first) >= 6 and {row[2] for row in first} == {"ok"}  # two generations or more
    assert first == second  # two uninterrupted runs, in processes with other hash seeds
    assert resumed == first  # killed in its second generation, resumed in another process
    assert [t for t in _trials(config) if INTERRUPTED in t.user_attrs]
    trained = kills.traced(folders[2] / "trace") + FakeTrainer.trained[trained_before:]
    assert len(trained) - len(set(trained)) <= 1  # only the evaluation the kill cut short
    _assert_mlflow_agrees(config)


@pytest.mark.parametrize("backend", backend_names())
def test_a_kill_between_caching_a_result_and_ending_its_run_is_repaired_by_the_rerun(
    tmp_path, backend
):
    extra = {**STUDY_OF.get(backend, {}), "workers": {"batch": 2}}
    path = write_study(tmp_path, backend=backend, budget={"trials": 4}, **extra)
    trace = tmp_path / "trace"
    kills.killed(kills.start(path, trace, die_after_cache=3))  # the baseline, then two trials
    config = load_study(path)
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    assert [r for r in tracker.find_runs() if r.tags.get("status") == "running"]

    run_study(config, resume=True, progress=False, trainer=FakeTrainer)

    trained = kills.traced(trace) + FakeTrainer.trained
    assert len(trained) == len(set(trained))  # the cached result is not trained again
    _assert_mlflow_agrees(config)
    interrupted = [t for t in _trials(config) if INTERRUPTED in t.user_attrs]
    assert interrupted  # the killed entry, run again from the cache into its own run
    retries = [t for t in _trials(config) if t.user_attrs.get("losslab.retry_of") is not None]
    assert any(
        t.user_attrs[RUN_ID] == i.user_attrs[RUN_ID] and "losslab.cached_from" not in t.user_attrs
        for t in retries
        for i in interrupted
    )


def test_a_killed_comparison_leaves_no_run_running_after_its_rerun(tmp_path):
    path = write_study(tmp_path, baselines=["dice"], budget={"trials": 2})
    run_study(load_study(path), progress=False, trainer=FakeTrainer)
    FakeTrainer.trained = []
    trace = tmp_path / "trace"
    arguments = {"top": 2, "seeds": 2}
    kills.killed(kills.start(path, trace, die_after_cache=2, compare=arguments))
    config = load_study(path)
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    running = [r for r in tracker.find_runs() if r.tags.get("losslab.role") == "final"]
    assert [r.status for r in running] == ["FINISHED", "RUNNING"]

    study = open_finished(resolve_study(str(path)))
    comparison = run_comparison([study], progress=False, trainer=FakeTrainer, **arguments)

    assert all(r.ok for e in comparison.entrants for r in e.results)
    trained = kills.traced(trace) + FakeTrainer.trained
    assert len(FakeTrainer.trained) == 6 - 2  # the two cached before the kill train no more
    finals = [r for r in tracker.find_runs() if r.tags.get("losslab.role") == "final"]
    assert len(finals) == 6 and {r.status for r in finals} == {"FINISHED"}
    assert {r.tags["status"] for r in finals} == {"ok"}
    run_ids = {run_id for e in comparison.entrants for run_id in e.run_ids}
    assert run_ids == {r.run_id for r in finals}
    assert len(trained) == 6


def test_a_kill_during_a_promotion_on_a_ladder_loses_and_repeats_nothing(tmp_path):
    from losslab.search.store.attrs import LADDER
    from losslab.testing.ladder_contract import LADDER as RUNGS

    path = write_study(
        tmp_path, fidelity=RUNGS, budget={"trials": 10}, workers={"batch": 1}, baselines=["dice"]
    )
    trace = tmp_path / "trace"
    process = kills.start(path, trace, epoch_seconds=0.3, fidelity_trace=True)
    config = load_study(path)

    def training_a_promotion() -> bool:
        return any(
            t.state == TrialState.RUNNING and LADDER in t.user_attrs and RUN_ID in t.user_attrs
            for t in _trials(config)
        )

    kills.wait_for(process, training_a_promotion)
    outcome = run_study(config, resume=True, progress=False, trainer=FakeTrainer)
    assert len(outcome.records) == 10  # the budget, across rungs
    positions = [(r.rung, r.number if r.root is None else r.root, r.seed) for r in outcome.records]
    assert len(set(positions)) == len(positions)  # no ladder position evaluated twice
    assert any(r.root is not None for r in outcome.records)
    (cut,) = [t for t in _trials(config) if INTERRUPTED in t.user_attrs]
    place = cut.user_attrs[LADDER]
    assert (place["rung"], place["root"], place["seed"]) in positions  # run again, once
    trained = kills.traced(trace) + FakeTrainer.evaluated
    assert len(trained) - len(set(trained)) <= 1  # only the evaluation the kill cut short
    _assert_mlflow_agrees(config)
