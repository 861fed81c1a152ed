"""A study killed mid-way (SIGKILL, or SIGTERM as a scheduler sends) and resumed ends with every
trial done once: none lost, none repeated, Optuna and MLflow agreeing on the count."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from losslab.search import load_study, run_study
from losslab.search.store.optuna_store import INTERRUPTED
from losslab.search.store.storage import open_storage
from losslab.tracking.tracker import Tracker

from .studies import write_study

pytestmark = pytest.mark.slow

TRIALS = 5


def _wait_mid_trial(config, process: subprocess.Popen, timeout: float = 240.0) -> None:
    """Until two trials are complete and a third is training (its MLflow run exists)."""
    storage = open_storage(config.storage)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the study ended early: {process.communicate()[0]}")
        try:
            trials = optuna.load_study(study_name=config.name, storage=storage).trials
        except KeyError:  # not created yet
            trials = []
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        training = [
            t
            for t in trials
            if t.state == TrialState.RUNNING and "losslab.mlflow_run_id" in t.user_attrs
        ]
        if done >= 2 and training:
            return
        time.sleep(0.1)
    process.kill()
    raise AssertionError("the study did not reach its third trial in time")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_study_resumes_without_loss_or_repeat(tmp_path, how):
    path = write_study(
        tmp_path,
        budget={"trials": TRIALS},
        baselines=[],
        fidelity={"epochs": 3, "steps_per_epoch": 4},
        optuna={"sampler": {"name": "random", "seed": 1}},
    )
    config = load_study(path)
    process = subprocess.Popen(
        [sys.executable, "-m", "losslab.cli.main", "search", str(path), "--no-progress"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_mid_trial(config, process)
    study = optuna.load_study(study_name=config.name, storage=open_storage(config.storage))
    before = {
        t.number: t.user_attrs["losslab.mlflow_run_id"]
        for t in study.trials
        if t.state == TrialState.COMPLETE
    }
    process.send_signal(how)
    output = process.communicate(timeout=60)[0]
    if how == signal.SIGTERM:
        assert process.returncode == 130, output
        assert "--resume" in output

    outcome = run_study(config, resume=True, progress=False)

    trials = optuna.load_study(study_name=config.name, storage=open_storage(config.storage)).trials
    interrupted = [t for t in trials if INTERRUPTED in t.user_attrs]
    counted = [t for t in trials if t.state.is_finished() and INTERRUPTED not in t.user_attrs]
    assert len(interrupted) == 1 and interrupted[0].state == TrialState.FAIL
    assert len(counted) == TRIALS == len(outcome.records)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # The interrupted candidate was evaluated again, with the same parameters.
    (retry,) = [t for t in trials if t.user_attrs.get("losslab.retry_of") == interrupted[0].number]
    assert retry.params == interrupted[0].params and retry.state == TrialState.COMPLETE
    # What finished before the kill was kept, not repeated.
    for number, run_id in before.items():
        assert trials[number].user_attrs["losslab.mlflow_run_id"] == run_id
    # MLflow holds one finished run per counted (trained) trial, and the interrupted one.
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    runs = [r for r in tracker.find_runs() if r.tags.get("losslab.role") == "trial"]
    finished = [r for r in runs if r.tags.get("status") in ("ok", "failed", "pruned")]
    trained = [t for t in counted if "losslab.cached_from" not in t.user_attrs]
    assert len(finished) == len(trained)
    assert sorted(r.run_id for r in finished) == sorted(
        t.user_attrs["losslab.mlflow_run_id"] for t in trained
    )
    assert len({r.tags["losslab.eval_key"] for r in finished}) == len(finished)
    # The interrupted run is superseded by its rerun's: deleted (out of the default view).
    assert not [r for r in runs if r.tags.get("status") == "interrupted"]
    stopped = tracker.find_runs(deleted=True)
    assert [r.status for r in stopped] == ["KILLED"]
    assert stopped[0].run_id == interrupted[0].user_attrs["losslab.mlflow_run_id"]
    assert stopped[0].tags["losslab.superseded_by"] == retry.user_attrs["losslab.mlflow_run_id"]
    assert not [r for r in tracker.find_runs() if r.status == "RUNNING"]
