"""``budget.minutes`` stops a running evaluation: recorded as interrupted, re-queued, run again."""

from __future__ import annotations

import dataclasses
import math
import time

import optuna
import pytest
from optuna.trial import TrialState

from losslab.candidate import Candidate
from losslab.search import Budget, load_study, run_study
from losslab.search.deadline import DeadlineHook, TimeUp
from losslab.search.store.optuna_store import INTERRUPTED
from losslab.search.store.storage import open_storage
from losslab.tracking.tracker import Tracker
from losslab.training import Hook, TrainConfig, Trainer

from .studies import write_study


class _Keep(Hook):
    def __init__(self) -> None:
        self.results = []

    def on_train_end(self, state, result) -> None:
        self.results.append(result)


class _Slow(Hook):
    """Makes every step last ``seconds`` longer (an evaluation far longer than the budget)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_step_end(self, state) -> None:
        time.sleep(self.seconds)


def test_the_deadline_hook_stops_a_run_as_interrupted(tiny_phantom):
    config = TrainConfig(
        epochs=1000, steps_per_epoch=1000, batch_size=1, patch_size=(16, 16, 16), device="cpu"
    )

    class OneSecondOfTraining(DeadlineHook):
        def on_train_start(self, state) -> None:
            self.deadline = time.perf_counter() + 1.0

    keep, hook = _Keep(), OneSecondOfTraining(math.inf, 1 / 60)
    with pytest.raises(TimeUp, match="time budget"):
        Trainer(config, [hook, keep]).fit(Candidate.from_loss("dice"), tiny_phantom)
    assert time.perf_counter() - hook.deadline < 5  # stopped at the next step, not at the end
    (result,) = keep.results
    assert result.status == "interrupted" and 0 < result.steps < 1000


def _trials(config):
    study = optuna.load_study(study_name=config.name, storage=open_storage(config.storage))
    return study.get_trials(deepcopy=False)


@pytest.mark.slow
def test_the_time_budget_stops_a_trial_on_time_and_a_rerun_finishes_it(tmp_path):
    minutes = 0.15
    path = write_study(
        tmp_path,
        budget={"trials": 1, "minutes": minutes},
        baselines=[],
        fidelity={"epochs": 2, "steps_per_epoch": 40},
    )
    config = load_study(path)
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)  # the budget trains
    start = time.perf_counter()
    outcome = run_study(config, progress=False, extra_hooks=lambda: [_Slow(0.5)])  # 40+ s each
    assert time.perf_counter() - start < 60 * minutes + 5
    assert outcome.out_of_time and outcome.records == []
    (stopped, queued) = _trials(config)
    assert stopped.state == TrialState.FAIL and "time budget" in stopped.user_attrs[INTERRUPTED]
    assert queued.state == TrialState.WAITING  # re-queued with the same parameters
    assert queued.user_attrs["losslab.retry_of"] == stopped.number
    runs = tracker.find_runs()
    assert not [r for r in runs if r.status == "RUNNING"]
    (killed,) = [r for r in runs if r.tags.get("losslab.role") == "trial"]
    assert killed.status == "KILLED" and killed.tags["status"] == "interrupted"
    assert killed.run_id == stopped.user_attrs["losslab.mlflow_run_id"]

    again = run_study(dataclasses.replace(config, budget=Budget(trials=1)), progress=False)

    assert not again.out_of_time
    (record,) = again.records
    assert record.status == "ok" and record.params == stopped.params
    trials = _trials(config)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["losslab.retry_of"] == stopped.number
    assert not [r for r in tracker.find_runs() if r.status == "RUNNING"]


def test_a_signals_stop_that_python_swallowed_is_acted_on_at_the_next_step(tmp_path):
    """A SIGTERM raised inside a garbage-collector callback is printed as "ignored" and lost;
    the recorded request still stops the study at its next step, as Ctrl-C would."""
    from losslab import interrupts
    from losslab.search.store import open_store
    from losslab.testing.fakes import FakeTrainer

    from .studies import write_study

    config = load_study(write_study(tmp_path, budget={"trials": 3}, baselines=[]))
    interrupts.request("signal 15")
    try:
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            run_study(config, progress=False, trainer=FakeTrainer)
    finally:
        interrupts.clear()
    assert FakeTrainer.trained == []  # stopped before its first step, nothing counted
    outcome = run_study(config, resume=True, progress=False, trainer=FakeTrainer)
    assert len(outcome.records) == 3
    store = open_store(config.storage, study_name=config.name, fingerprint=config.fingerprint)
    store.open(resume=True, seed=config.seed)
    assert len(store.records()) == 3
