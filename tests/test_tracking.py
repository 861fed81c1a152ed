"""MLflow records of evaluations, read back the way a user would."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

import losslab.training.setup as training_setup
from losslab.candidate import Candidate
from losslab.data import load_dataset
from losslab.tracking.hook import MLflowHook
from losslab.tracking.sqlite_store import prepare_store, unfinished_store, use_wal
from losslab.tracking.tracker import Tracker, _release_engines, resolve_tracking_uri
from losslab.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def phantom():
    return load_dataset("phantom", cases=6, shape=(32, 32, 32), seed=0)


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def config():
    return TrainConfig(
        epochs=2, steps_per_epoch=3, patch_size=(32, 32, 32), device="cpu", hd95=True, lr=3e-3
    )


def run(uri, candidate, dataset, config, experiment, parent=None):
    tracker = Tracker(uri, experiment=experiment)
    hook = MLflowHook(
        tracker,
        candidate,
        config,
        data_fingerprint=dataset.fingerprint,
        parent_run_id=parent,
        tags={"backend": "test"},
    )
    result = Trainer(config, [hook]).fit(candidate, dataset)
    return tracker, hook.run_id, result


def test_run_holds_params_metrics_and_artifacts(uri, phantom, config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts of a SQLite store default to the working directory
    tracker, run_id, result = run(uri, Candidate.from_loss("dice_ce"), phantom, config, "ok")
    assert result.ok
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["ok"])
    assert len(runs) == 1
    row = runs.iloc[0]
    assert row["status"] == "FINISHED" and row["tags.status"] == "ok"
    assert row["tags.backend"] == "test"
    assert row["params.seed"] == "0"
    assert row["params.data.fingerprint"] == phantom.fingerprint
    assert row["params.loss.0"].startswith("1 - (2 * vsum(p * y)")
    assert row["params.candidate.key"] == Candidate.from_loss("dice_ce").key
    # Per class: a table (test_per_class.json), not one single-point metric per class.
    assert "metrics.test_dice/liver" not in row and "metrics.test_hd95/mean" in row
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/test_per_class.json"))
    liver = dict(zip(table["columns"], table["data"][6]))
    assert liver["class"] == "liver"
    assert math.isclose(liver["dice"], result.test_metrics["dice"][6], rel_tol=1e-6)
    client = MlflowClient(uri)
    history = client.get_metric_history(run_id, "val_dice/liver")
    assert [m.step for m in history] == [1, 2]
    assert [m.value for m in history] == pytest.approx([r.val_dice[6] for r in result.history])
    assert [m.value for m in client.get_metric_history(run_id, "weight/pancreas")] == [1.0, 1.0]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"candidate.json", "history.json", "per_class.csv", "test_per_class.json"} <= artifacts
    candidate = Candidate.from_json(mlflow.artifacts.load_text(f"runs:/{run_id}/candidate.json"))
    assert candidate == Candidate.from_loss("dice_ce")  # reproducible from what MLflow holds


def test_failed_run_is_recorded_with_its_reason(uri, phantom, config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def nan_loss(terms):
        return lambda logits, labels, weights=None: [logits.sum() * math.nan]

    monkeypatch.setattr(training_setup, "compile_terms", nan_loss)
    _, run_id, result = run(uri, Candidate.from_loss("dice"), phantom, config, "failing")
    assert result.status == "failed"
    info = MlflowClient(uri).get_run(run_id)
    assert info.info.status == "FAILED"
    assert info.data.tags["status"] == "failed"
    assert "non-finite loss at step 1" in info.data.tags["failure_reason"]
    history = json.loads(
        mlflow.artifacts.load_text(f"runs:/{run_id}/history.json").replace("NaN", "null")
    )
    assert history["failed_step"] == 1


def test_nested_runs_sit_under_their_parent(uri, phantom, config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracker = Tracker(uri, experiment="nested")
    parent = tracker.start_run("suite")
    _, child, _ = run(uri, Candidate.from_loss("dice"), phantom, config, "nested", parent=parent)
    assert MlflowClient(uri).get_run(child).data.tags["mlflow.parentRunId"] == parent


def test_tracking_uri_resolution(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///other.db")
    assert resolve_tracking_uri() == "sqlite:///other.db"
    assert resolve_tracking_uri("sqlite:///given.db") == "sqlite:///given.db"


def test_schedules_apply_and_their_weights_reach_mlflow(uri, phantom, tmp_path, monkeypatch):
    from losslab.candidate import ScheduleSpec

    monkeypatch.chdir(tmp_path)
    config = TrainConfig(
        epochs=2, steps_per_epoch=4, patch_size=(32, 32, 32), device="cpu", hd95=False
    )
    candidate = Candidate.from_loss(
        "dice_ce",
        class_schedule=ScheduleSpec.of("tcf", threshold=0.0, frozen_weight=0.1),
        term_schedule=ScheduleSpec.of("ramp"),
    )
    _, run_id, result = run(uri, candidate, phantom, config, "schedules")
    assert result.ok, result.reason
    first, second = result.history
    assert first.class_weights == [1.0] * phantom.num_classes
    # TCF: a class scored above the threshold after epoch 1 trains epoch 2 at the frozen weight.
    expected = [1.0] + [0.1 if s > 0.0 else 1.0 for s in first.val_dice[1:]]
    assert second.class_weights == pytest.approx(expected)
    assert 0.1 in expected and 1.0 in expected[1:]  # the test separates both cases
    # Hegde's ramp CE -> Dice over 8 steps: at step index 3 a = 3/7, alphas [1 - a, a].
    assert first.term_weights == pytest.approx([4 / 7, 3 / 7])
    assert second.term_weights == pytest.approx([0.0, 1.0])
    client = MlflowClient(uri)
    for c, name in enumerate(phantom.class_names):
        history = [m.value for m in client.get_metric_history(run_id, f"weight/{name}")]
        assert history == pytest.approx([1.0, expected[c]])
    # The term weights' curves are named by their terms (dice_ce: dice, ce), not 0 and 1.
    assert [m.value for m in client.get_metric_history(run_id, "term_weight/ce")] == pytest.approx(
        [3 / 7, 1.0]
    )
    logged = client.get_run(run_id).data.metrics
    assert "term_weight/dice" in logged and "term_weight/0" not in logged


def _start_and_kill(folder, uri: str, delay: float) -> int:
    """Start a process that creates the store, kill it (SIGKILL) ``delay`` seconds after it begins
    writing a file; its exit code (-9: killed before it finished)."""
    script = f"from losslab.tracking.tracker import Tracker; Tracker({uri!r}, experiment='first')"

    def files() -> set[tuple[str, int]]:
        found = set()
        for entry in os.scandir(folder):
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                found.add((entry.name, entry.stat().st_mtime_ns))
        return found

    before = files()
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if {name for name, _ in files() - before} - {"mlflow.db.lock"}:
            break
        time.sleep(0.02)
    time.sleep(delay)
    process.kill()
    return process.wait()


@pytest.mark.slow
def test_a_start_killed_while_it_creates_the_store_leaves_it_usable(tmp_path):
    rng = random.Random(7)
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    codes = []
    # Creating the store takes about 3 s (MLflow's migrations); kills early in it land on a
    # loaded or a fast machine alike. Go on until three kills landed (at most eight starts).
    while codes.count(-9) < 3 and len(codes) < 8:
        codes.append(_start_and_kill(tmp_path, uri, rng.uniform(0.0, 1.5)))
        if codes[-1] == 0:  # it finished first: start over so that the next kill lands in creation
            db.unlink()
    tracker = Tracker(uri, experiment="after")
    run_id = tracker.start_run("run")
    tracker.log_metrics(run_id, {"x": 1.0})
    tracker.end_run(run_id)
    (run,) = Tracker(uri, experiment="after").find_runs()
    assert run.run_id == run_id and run.status == "FINISHED" and run.metrics == {"x": 1.0}
    # Nothing left of a creation; the write-ahead log and its index stay while the store is open.
    wal = {"mlflow.db-wal", "mlflow.db-shm"}
    assert {p.name for p in tmp_path.iterdir()} - wal == {"mlflow.db", "mlflow.db.lock"}
    assert set(codes) <= {0, -9}, codes  # no start failed on what a killed one left
    assert codes.count(-9) >= 3, codes  # the kills landed while the store was being created


def test_a_half_made_store_is_made_anew_and_leftovers_removed(tmp_path):
    half = tmp_path / "half.db"
    with sqlite3.connect(half) as db:  # what a creation cut short leaves: tables, no experiment
        for table in ("experiments", "runs", "datasets"):
            db.execute(f"CREATE TABLE {table} (id TEXT)")
    leftover = tmp_path / "half.db.creating-1-abc"  # of a creation killed before its rename
    leftover.write_bytes(b"partial")
    built = []

    def build(path: str) -> None:
        built.append(path)
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE complete (id TEXT)")

    assert unfinished_store(str(half))
    assert prepare_store(str(half), build)
    assert not leftover.exists() and len(built) == 1 and not os.path.exists(built[0])
    (aside,) = tmp_path.glob("half.db.half-made-*")  # kept, never deleted
    with sqlite3.connect(aside) as db:
        assert len(list(db.execute("SELECT name FROM sqlite_master"))) == 3
    with sqlite3.connect(half) as db:  # the new store was renamed into place
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["complete"]


def test_a_complete_store_and_a_foreign_database_are_left_alone(uri, tmp_path):
    Tracker(uri, experiment="kept")
    foreign = tmp_path / "notes.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    for path in (uri[len("sqlite:///") :], str(foreign)):
        assert not unfinished_store(path)
        assert not prepare_store(path, lambda p: pytest.fail(f"rebuilt {p}"))


def test_a_local_store_commits_through_a_write_ahead_log(uri, tmp_path):
    path = uri[len("sqlite:///") :]
    Tracker(uri, experiment="wal")
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: as durable
        _release_engines(path)  # MLflow's connections (a store made before: no WAL)
        assert db.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    Tracker(uri, experiment="wal")
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    text = tmp_path / "notes.txt"
    text.write_text("not a database")
    assert not use_wal(str(text)) and text.read_text() == "not a database"


def test_experiments_open_on_their_runs_in_mlflow_3(tmp_path):
    uri = f"sqlite:///{tmp_path / 'kind.db'}"
    Tracker(uri, experiment="new")
    client = MlflowClient(uri)
    kind = "mlflow.experimentKind"  # MLflow 3's UI: "Model training", not the GenAI view
    assert client.get_experiment_by_name("new").tags[kind] == "custom_model_development"
    # An experiment made before (no kind, or one the UI inferred) gets it on the next connect;
    # a kind someone chose is kept.
    old = client.create_experiment("old")
    inferred = client.create_experiment("inferred", tags={kind: "genai_development_inferred"})
    chosen = client.create_experiment("chosen", tags={kind: "genai_development"})
    for name in ("old", "inferred", "chosen"):
        Tracker(uri, experiment=name)
    assert client.get_experiment(old).tags[kind] == "custom_model_development"
    assert client.get_experiment(inferred).tags[kind] == "custom_model_development"
    assert client.get_experiment(chosen).tags[kind] == "genai_development"
