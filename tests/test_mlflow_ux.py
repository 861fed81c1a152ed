"""What a user sees of a study in MLflow, Optuna and the console: run names by role and
content, the best run marked, the parent's description, readable params, the per-class table,
the objective's name in optuna-dashboard, quiet output, and schedules that changed nothing."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import mlflow
import optuna
import pytest
from search.studies import write_study

from losslab.candidate import Candidate, ScheduleSpec
from losslab.cli.search import dashboard_command
from losslab.console import unchanged_schedule_warnings
from losslab.data import load_dataset
from losslab.losses import parse_loss
from losslab.search import load_study, run_study
from losslab.search.evaluator import Evaluator
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.search.store.optuna_store import OptunaStudyStore
from losslab.search.store.storage import open_storage
from losslab.search.study_runs import NOTE, describe_study, tag_best
from losslab.search.summary import class_dice_table, schedule_warnings
from losslab.tracking.format import BEST_MARK, RUN_NAME_LIMIT, run_name
from losslab.tracking.tracker import Tracker
from losslab.training import EpochRecord, Result, TrainConfig

STUDY = {  # changes to the tiny study of tests/search/studies.py
    "study": "ux",
    "fidelity": {"epochs": 2, "steps_per_epoch": 1},
    "budget": {"trials": 2},
    "baselines": [{"name": "dice+cbs", "loss": "dice", "class_schedule": "cbs"}],
    "space": {
        "loss": {"focal": {"gamma": {"float": [0.5, 4.0]}}},
        "train": {"lr": {"float": [1.0e-3, 1.0e-2], "log": True}},
    },
    "experiment": "ux",
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny study (two focal trials with a searched lr, a CBS baseline), run once."""
    loaded = load_study(write_study(tmp_path_factory.mktemp("ux"), **STUDY))
    outcome = run_study(loaded, progress=False)
    tracker = Tracker(loaded.tracking_uri, experiment=loaded.experiment)
    runs = {r.run_id: r for r in tracker.find_runs()}
    return loaded, outcome, tracker, runs


def test_runs_are_named_by_role_and_content(study):
    _, outcome, _, runs = study
    (baseline,) = outcome.baselines
    assert runs[baseline.run_id].name == "baseline dice+cbs"
    for record in outcome.records:
        name = runs[record.run_id].name.removesuffix(BEST_MARK)
        description = record.candidate.describe(record.overrides)
        assert name == f"trial-{record.number:03d} {description}"
        assert name.startswith(f"trial-{record.number:03d} focal(gamma=")
        assert "lr=" in name  # the searched learning rate is part of what the trial is


def test_the_best_run_is_marked_and_the_mark_moves(study):
    _, outcome, tracker, runs = study
    best = outcome.best(1)[0]
    marked = [r.run_id for r in runs.values() if r.name.endswith(BEST_MARK)]
    assert marked == [best.run_id]
    other = next(r for r in outcome.records if r.run_id != best.run_id)
    try:
        tag_best(tracker, outcome.parent_run_id, other, step=9)
        assert tracker.run_name(other.run_id).endswith(BEST_MARK)
        assert not tracker.run_name(best.run_id).endswith(BEST_MARK)
        tagged = tracker.runs_tagged({"losslab.best": "true"})
        assert [r.run_id for r in tagged] == [other.run_id]
    finally:  # as the study's close leaves it
        tag_best(tracker, outcome.parent_run_id, best, step=9)
        describe_study(outcome)
    assert tracker.run_name(best.run_id).endswith(BEST_MARK)
    assert tracker.run_name(best.run_id).count("★") == 1


def test_the_parent_run_describes_the_study(study):
    config, outcome, tracker, _ = study
    note = tracker.client.get_run(outcome.parent_run_id).data.tags[NOTE]
    assert "| candidate | role | val objective | test objective | test mean Dice |" in note
    assert "| dice+cbs | baseline |" in note
    assert f"trial {outcome.best(1)[0].number}" in note and "★" in note
    assert "backend `optuna`" in note and config.objective.describe() in note
    assert "epochs=2" in note and "train 4 / val 1 / test 1" in note
    assert "2 trials of 2" in note


def _significant(text: str) -> int:
    digits = text.lower().split("e")[0].replace("-", "").replace(".", "").lstrip("0")
    return len(digits)


def test_params_are_readable_rounded_and_complete(study):
    _, outcome, tracker, _ = study
    for run_id in [outcome.baselines[0].run_id, *(r.run_id for r in outcome.records)]:
        params = tracker.client.get_run(run_id).data.params
        assert not {v for v in params.values() if v in ("None", "{}", "[]", "()", "")}
        for key, value in params.items():
            try:
                float(value)
            except ValueError:
                continue
            assert _significant(value) <= 4, (key, value)
        assert "loss" in params and "candidate.term0" not in params
    baseline = tracker.client.get_run(outcome.baselines[0].run_id).data.params
    # CBS with its defaults logs them all.
    assert baseline["class_schedule"] == "cbs"
    assert baseline["class_schedule.zeta"] == "0.1" and baseline["class_schedule.cap"] == "2"
    assert baseline["class_schedule.delta"] == "2"
    assert baseline["class_schedule.epsilon"] == "0.005"
    trial = tracker.client.get_run(outcome.records[0].run_id).data.params
    gamma = outcome.records[0].candidate.loss_parameters()["gamma"]
    assert trial["loss.gamma"] == f"{gamma:.4g}" and trial["loss.gamma"] != repr(gamma)


def test_best_candidate_json_holds_the_overrides_and_the_lr(study):
    _, outcome, tracker, _ = study
    best = outcome.best(1)[0]
    mlflow.set_tracking_uri(tracker.tracking_uri)
    uri = f"runs:/{outcome.parent_run_id}/best_candidate.json"
    data = json.loads(mlflow.artifacts.load_text(uri))
    assert data["overrides"]["lr"] == pytest.approx(best.overrides["lr"])
    assert data["train"]["lr"] == pytest.approx(best.overrides["lr"])
    assert data["train"]["epochs"] == 2  # the train config at the study's fidelity
    assert Candidate.from_dict(data) == best.candidate  # losslab train --candidate reads it


def test_the_per_class_table_holds_the_test_metrics(study):
    _, outcome, _, _ = study
    mlflow.set_tracking_uri(outcome.tracker.tracking_uri)
    result = outcome.baselines[0].result
    run_id = outcome.baselines[0].run_id
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/test_per_class.json"))
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [r["class"] for r in rows] == list(result.class_names)
    for metric, values in result.test_metrics.items():
        for row, value in zip(rows, values):
            if math.isnan(value):
                assert row[metric] is None
            else:
                assert row[metric] == pytest.approx(value, rel=1e-6)
    assert rows[1]["voxel_share"] > 0 and rows[1]["cases"] >= 0
    metrics = outcome.tracker.client.get_run(run_id).data.metrics
    assert "test_dice/mean" in metrics and "test_objective" in metrics
    per_class = [k for k in metrics if k.startswith("test_") and "/" in k]
    assert per_class and all(k.endswith("/mean") for k in per_class)


def test_the_optuna_study_names_its_objective(study, tmp_path):
    config, _, _, _ = study
    loaded = optuna.load_study(study_name=config.name, storage=open_storage(config.storage))
    assert loaded.metric_names == ["val mean Dice"]
    url = f"journal:{tmp_path / 'named.log'}"
    store = OptunaStudyStore(url, study_name="named", fingerprint="f", metric_name="val mean Dice")
    store.open(resume=False, seed=0)
    store.close()
    named = optuna.load_study(study_name="named", storage=open_storage(url))
    assert named.metric_names == ["val mean Dice"]


def test_a_schedule_that_changed_nothing_is_reported(study):
    _, outcome, _, _ = study
    lines = schedule_warnings(outcome)  # CBS cannot trigger within 2 epochs
    assert len(lines) == 1
    assert "dice+cbs: the class schedule cbs never changed a weight in 2 epochs" in lines[0]
    assert "so it trained exactly as without it" in lines[0] and "delta=2" in lines[0]


def test_a_schedule_that_changed_a_weight_is_not_reported():
    candidate = Candidate.from_loss("dice", class_schedule=ScheduleSpec.of("tcf"), name="t")

    def result(weights):
        history = [EpochRecord(e, 0.5, [0.1, 0.2], w, [1.0], 0.0) for e, w in enumerate(weights)]
        return Result(status="ok", class_names=["bg", "a"], history=history)

    assert unchanged_schedule_warnings([("t", candidate, result([[1.0, 0.1], [1.0, 1.0]]))]) == []
    lines = unchanged_schedule_warnings([("t", candidate, result([[1.0, 1.0]] * 3))])
    assert "tcf never changed a weight in 3 epochs" in lines[0] and "threshold=0.9" in lines[0]
    uniform = Candidate.from_loss("dice")
    assert unchanged_schedule_warnings([("u", uniform, result([[1.0, 1.0]] * 3))]) == []


def test_the_class_table_says_which_cases_it_covers_and_marks_nothing(study):
    _, outcome, _, _ = study
    table = class_dice_table(outcome)
    assert table.title == "Test Dice per class (test split, 1 case; one seed)"


def test_the_dashboard_command_fits_the_storage():
    assert dashboard_command("journal:runs/optuna studies.log") == (
        "optuna-dashboard --storage-class JournalFileStorage 'runs/optuna studies.log'"
    )
    assert dashboard_command("sqlite:///optuna.db") == "optuna-dashboard sqlite:///optuna.db"


def test_descriptions_and_run_names():
    tversky = Candidate.from_loss("tversky", alpha=0.2834567, beta=0.9012345)
    assert tversky.describe() == "tversky(alpha=0.283, beta=0.901)"
    assert run_name("trial 4", tversky, {"lr": 0.0031234}) == (
        "trial-004 tversky(alpha=0.283, beta=0.901); lr=0.00312"
    )
    cbs = Candidate.from_loss("dice_ce", class_schedule=ScheduleSpec.of("cbs", zeta=0.2))
    assert cbs.describe() == "dice_ce + cbs(zeta=0.2)"
    assert run_name("baseline dice+cbs", cbs) == "baseline dice+cbs"
    assert run_name("final baseline dice+cbs seed 2", cbs) == "final baseline dice+cbs seed 2"
    assert run_name("final trial-004 seed 2", tversky).startswith("final trial-004 seed 2 tversky(")
    long = Candidate(terms=tuple(parse_loss(f"vmean(-y * logp) * {k + 2}") for k in range(30)))
    assert len(run_name("trial 1", long)) + len(BEST_MARK) <= RUN_NAME_LIMIT
    learned = Candidate.from_loss("lossnet:" + "ab" * 32, name="ml3-0")
    assert "ab" * 32 not in run_name("trial 2", learned)


@pytest.fixture
def loud_mlflow(monkeypatch):
    """MLflow's loggers at INFO, as on a fresh import, recording what they emit."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    yield records
    for logger, level in zip(loggers, levels):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_an_evaluation_on_a_new_store_prints_no_mlflow_info(tmp_path, capfd, loud_mlflow):
    dataset = load_dataset("phantom", cases=3, shape=(16, 16, 16), seed=0)
    train = TrainConfig(epochs=1, steps_per_epoch=1, patch_size=(16, 16, 16), device="cpu")
    tracker = Tracker(f"sqlite:///{tmp_path / 'new.db'}", experiment="quiet")  # a new store
    parent = tracker.start_run("parent")
    evaluator = Evaluator(
        dataset, train, Fidelity(), Objective(), tracker=tracker, parent_run_id=parent
    )
    dice = Candidate.from_loss("dice", name="dice")
    evaluation = evaluator.evaluate(dice, origin="baseline dice")
    tracker.end_run(parent)
    out, err = capfd.readouterr()
    assert evaluation.result.ok
    assert [r.getMessage() for r in loud_mlflow if r.levelno < logging.WARNING] == []
    assert "INFO" not in out + err and "View run" not in out + err
    assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
    assert tracker.run_name(evaluation.run_id) == "baseline dice"


def test_evaluations_and_the_study_log_their_plots(tmp_path, monkeypatch):
    """With plots on, each evaluation's run holds its PNGs under plots/ (the logit margins
    from the test split among them) and the study's parent run its own."""
    monkeypatch.setenv("LOSSLAB_PLOTS", "1")
    changes = {**STUDY, "study": "plots", "budget": {"trials": 1}, "baselines": []}
    loaded = load_study(write_study(tmp_path, **changes))
    outcome = run_study(loaded, progress=False)
    client = Tracker(loaded.tracking_uri, experiment=loaded.experiment).client
    (record,) = outcome.records
    names = {f.path for f in client.list_artifacts(record.run_id, "plots")}
    assert {"plots/val_dice.png", "plots/class_weights.png", "plots/logits.png"} <= names
    parent = {f.path for f in client.list_artifacts(outcome.parent_run_id, "plots")}
    assert "plots/objective_history.png" in parent
    local = client.download_artifacts(record.run_id, "plots/logits.png", str(tmp_path))
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
