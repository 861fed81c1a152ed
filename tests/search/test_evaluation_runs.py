"""An evaluation's MLflow run holds every epoch it trained, the one a hook stopped it on
included, and ``objective`` once per step; a stop after the last epoch keeps the finished run
with its test metrics, and says so. (Kills and reruns: ``test_kills.py``.)"""

from __future__ import annotations

import pytest

from losslab.search import load_study, run_study
from losslab.tracking.tracker import Tracker
from losslab.training import Hook, StopTraining
from losslab.training.hooks import STOPPED_AFTER_LAST_EPOCH

from .fakes import FakeTrainer
from .studies import write_study


@pytest.fixture(autouse=True)
def _fresh_fake():
    FakeTrainer.trained, FakeTrainer.fail_every, FakeTrainer.epoch_seconds = [], 0, 0.0
    yield


class _StopAt(Hook):
    """Prunes at the end of ``epoch`` (a pruner placed before the MLflow hook, as the study's)."""

    population_safe = True

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, state, record) -> None:
        if record.epoch == self.epoch:
            raise StopTraining(f"pruned at epoch {record.epoch} by the test")


def _trial_run(tmp_path, stop_at: int | None):
    path = write_study(
        tmp_path, budget={"trials": 1}, baselines=[], fidelity={"epochs": 3, "steps_per_epoch": 2}
    )
    config = load_study(path)
    hooks = (lambda: [_StopAt(stop_at)]) if stop_at else None
    outcome = run_study(config, progress=False, trainer=FakeTrainer, extra_hooks=hooks)
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    (record,) = outcome.records
    return record, tracker, tracker.run(record.run_id)


def _steps(tracker, run_id: str, metric: str) -> list[int]:
    return [m.step for m in tracker.client.get_metric_history(run_id, metric)]


def test_a_pruned_run_logs_the_epoch_it_stopped_on(tmp_path):
    record, tracker, run = _trial_run(tmp_path, stop_at=2)
    assert record.status == "pruned" and run.tags["status"] == "pruned"
    for metric in ("val_dice/mean", "train_loss", "objective"):
        assert _steps(tracker, run.run_id, metric) == [1, 2], metric
    assert [m for m in run.metrics if m.startswith("weight/")]
    for metric in [m for m in run.metrics if m.startswith(("weight/", "val_dice/"))]:
        assert max(_steps(tracker, run.run_id, metric)) == 2, metric


def test_a_finished_run_logs_its_objective_once_per_epoch(tmp_path):
    record, tracker, run = _trial_run(tmp_path, stop_at=None)
    assert record.status == "ok"
    assert _steps(tracker, run.run_id, "objective") == [1, 2, 3]
    assert run.metrics["objective"] == pytest.approx(record.value)


def test_a_stop_after_the_last_epoch_keeps_the_finished_trial_and_says_why(tmp_path):
    record, tracker, run = _trial_run(tmp_path, stop_at=3)
    assert record.status == "ok" and run.status == "FINISHED"
    assert "test_objective" in run.metrics
    assert "after the last epoch" in run.tags[STOPPED_AFTER_LAST_EPOCH]
    assert _steps(tracker, run.run_id, "objective") == [1, 2, 3]
