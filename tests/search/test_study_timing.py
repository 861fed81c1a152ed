"""A study on a slow machine: the baselines train outside ``budget.minutes`` so a trial still
fits, what fits is said before the trials start, a run in which no trial fits says so and what
to do, and a trial that a baseline beats is never called best (console, MLflow, parent run)."""

from __future__ import annotations

import io
import json
import math
import re
import time

import mlflow
import pytest
from rich.console import Console

from losslab.cli.search import print_outcome
from losslab.search import load_study, run_study
from losslab.search.study_runs import NOTE
from losslab.search.study_timing import fit_line, no_trial_line, plural
from losslab.search.summary import markdown_summary
from losslab.tracking.format import BEST_MARK
from losslab.tracking.tracker import Tracker
from losslab.training import Hook

from .fakes import FakeTrainer
from .studies import write_study

EPOCH = 1.0  # seconds per epoch of the fake trainer (2 epochs: 2 s and more per evaluation)
BASELINES = ["dice", {"name": "dice+cbs", "loss": "dice", "class_schedule": "cbs"}, "gdl"]


class TimedTrainer(FakeTrainer):
    """The fake trainer, slowed to ``EPOCH`` seconds an epoch, with its wall time recorded."""

    epoch_seconds = EPOCH

    def fit(self, candidate, dataset):
        start = time.perf_counter()
        result = super().fit(candidate, dataset)
        result.wall_time = time.perf_counter() - start
        return result


class _Rescore(Hook):
    """Sets every class's validation and test Dice to ``value`` before the other hooks (the
    MLflow hook, the cache) see them."""

    def __init__(self, value: float):
        self.value = value

    def on_epoch_end(self, state, record) -> None:
        record.val_dice = [math.nan] + [self.value] * (len(record.val_dice) - 1)

    def on_train_end(self, state, result) -> None:
        if result.test_metrics:
            result.test_metrics["dice"] = [math.nan] + [self.value] * (len(result.class_names) - 1)


class BaselinesWin(FakeTrainer):
    """The fake trainer whose baseline ``dice`` (plain Dice, uniform weights) scores
    ``baseline_dice`` on every class (0.99: no trial of a focal-only space reaches it)."""

    baseline_dice = 0.99

    def fit(self, candidate, dataset):
        if candidate.name == "dice" and candidate.class_schedule.name == "uniform":
            self.hooks.insert(0, _Rescore(self.baseline_dice))
        return super().fit(candidate, dataset)


class TrialsWin(BaselinesWin):
    """The baseline ``dice`` scores 0.01: every trial beats it."""

    baseline_dice = 0.01


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=400, color_system=None), buffer


def test_baselines_train_outside_the_minutes_so_a_trial_fits(tmp_path):
    # Three baselines take 6 s or more, more than the 4.8 s budget: before, they used it all
    # and the study ended with "best 0 of 0 trials".
    config = load_study(
        write_study(
            tmp_path,
            baselines=BASELINES,
            budget={"trials": 5, "minutes": 0.08},
            space={"loss": {"focal": {"gamma": {"float": [0.5, 4.0]}}}},
        )
    )
    console, buffer = _console()
    outcome = run_study(config, progress=False, console=console, trainer=TimedTrainer)
    assert len(outcome.baselines) == 3 and all(b.result.ok for b in outcome.baselines)
    assert outcome.counts()["ok"] >= 1
    said = buffer.getvalue()
    assert "3 baselines train first at the search fidelity (not counted in budget.minutes" in said
    assert "Trials start for 0.08 minutes (5 trials left in the budget)" in said
    assert re.search(r"one evaluation takes about \d s here, so about [12] trials? fit", said)
    assert 2 * EPOCH <= outcome.seconds_per_evaluation < 4 * EPOCH
    # A rerun finds the baselines in the cache and says so.
    console, buffer = _console()
    run_study(config, progress=False, console=console, trainer=TimedTrainer)
    assert (
        "The 3 baselines are in the study's cache: the trials start at once." in buffer.getvalue()
    )


def test_when_no_trial_fits_the_run_says_so_and_how_much_time_to_give(tmp_path):
    path = write_study(tmp_path, baselines=["dice"], budget={"trials": 2, "minutes": 0.005})
    config = load_study(path)
    console, buffer = _console()
    outcome = run_study(config, progress=False, console=console, trainer=TimedTrainer)
    assert outcome.records == [] and outcome.out_of_time
    # Before the trials: one evaluation (0.6 s) is longer than the 0.3 s budget.
    assert "no trial can finish in time" in buffer.getvalue()
    console, buffer = _console()
    print_outcome(console, outcome, f"losslab search {path}")
    out = buffer.getvalue()
    assert re.search(
        r"No trial finished: one evaluation takes about \d s here, more than the 0\.005 ", out
    )
    assert f"Give it more time: losslab search {path} --minutes 1" in out
    assert "0 trials in the study" in out and "no trial finished ok of 0 trials" in out


def test_the_time_lines_read_as_sentences():
    assert plural(1, "trial") == "1 trial" and plural(3, "trial") == "3 trials"
    assert "about 1 trial fit" in fit_line(300.0, 8, 30)
    assert "about 4 trials fit" in fit_line(120.0, 8, 30)
    assert "about 2 trials fit" in fit_line(120.0, 8, 2)  # no more than the budget holds
    assert "--minutes 15" in fit_line(600.0, 8, 30)  # 1.5 evaluations
    assert fit_line(60.0, 8, 0).startswith("The study's trials are done")
    assert no_trial_line(600.0, 8, "losslab search q.yaml").endswith(
        "losslab search q.yaml --minutes 15"
    )
    # Time enough for one, yet none finished (stopped early): continue, with more minutes.
    assert no_trial_line(60.0, 8, "losslab search q.yaml").endswith("--minutes 16")


@pytest.fixture(scope="module")
def beaten(tmp_path_factory):
    """A study of two focal trials whose baseline dice (0.99 everywhere) beats them."""
    folder = tmp_path_factory.mktemp("beaten")
    config = load_study(
        write_study(
            folder,
            budget={"trials": 2},
            baselines=["dice"],
            space={"loss": {"focal": {"gamma": {"float": [0.5, 4.0]}}}},
        )
    )
    outcome = run_study(config, progress=False, trainer=BaselinesWin)
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    return config, outcome, tracker


def test_a_trial_beaten_by_a_baseline_is_not_called_best_in_mlflow(beaten):
    config, outcome, tracker = beaten
    (baseline,) = outcome.baselines
    best = outcome.best(1)[0]
    assert outcome.beaten_by() is baseline
    marked = [r for r in tracker.find_runs() if r.name.endswith(BEST_MARK)]
    assert [r.run_id for r in marked] == [baseline.run_id]
    assert [r.run_id for r in tracker.runs_tagged({"losslab.best": "true"})] == [baseline.run_id]
    assert tracker.client.get_run(best.run_id).data.tags["losslab.beaten_by"] == "dice"
    parent = tracker.client.get_run(outcome.parent_run_id).data.tags
    assert parent["losslab.best_trial_beaten_by"] == "dice"
    assert parent["losslab.best_role"] == "baseline"
    artifacts = [a.path for a in tracker.client.list_artifacts(outcome.parent_run_id)]
    assert "best_trial.json" in artifacts and "best_candidate.json" not in artifacts
    mlflow.set_tracking_uri(tracker.tracking_uri)
    data = json.loads(mlflow.artifacts.load_text(f"runs:/{outcome.parent_run_id}/best_trial.json"))
    assert data["name"] == best.candidate.name and "beaten_by" not in data  # a candidate file
    note = tracker.client.get_run(outcome.parent_run_id).data.tags[NOTE]
    assert note == markdown_summary(outcome)


def test_a_trial_beaten_by_a_baseline_is_not_called_best_in_the_summary(beaten):
    config, outcome, _ = beaten
    best = outcome.best(1)[0]
    note = markdown_summary(outcome)
    assert "is beaten by baseline dice (0.990), so no trial is called best" in note
    (trial_row,) = [line for line in note.splitlines() if f"| trial {best.number} |" in line]
    (baseline_row,) = [line for line in note.splitlines() if "| baseline |" in line]
    assert "★" not in trial_row and baseline_row.startswith("| dice ★ |")
    console, buffer = _console()
    print_outcome(console, outcome, "losslab search study.yaml")
    out = buffer.getvalue()
    assert "Not better than the baselines yet: the best trial" in out
    assert "beaten by baseline dice (0.990)" in out
    assert "dice ★" in out and out.count("★") == 1


def test_a_trial_that_beats_every_baseline_is_the_best(tmp_path):
    config = load_study(
        write_study(
            tmp_path,
            budget={"trials": 2},
            baselines=["dice"],
            space={"loss": {"focal": {"gamma": {"float": [0.5, 4.0]}}}},
        )
    )
    outcome = run_study(config, progress=False, trainer=TrialsWin)
    best = outcome.best(1)[0]
    assert outcome.beaten_by() is None
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    marked = [r.run_id for r in tracker.find_runs() if r.name.endswith(BEST_MARK)]
    assert marked == [best.run_id]
    artifacts = [a.path for a in tracker.client.list_artifacts(outcome.parent_run_id)]
    assert "best_candidate.json" in artifacts and "best_trial.json" in artifacts
    console, buffer = _console()
    print_outcome(console, outcome, "losslab search study.yaml")
    assert "beats every baseline (the best, dice:" in buffer.getvalue()
