"""Workers on many machines sharing one study: PostgreSQL storage, one `mlflow server`, faults.

Each worker is a `losslab search` process that believes it runs on its own host
(``LOSSLAB_WORKER_HOST``), so a dead worker is found by its heartbeat, as on a cluster, and not
by its process id.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from losslab.search.store.optuna_store import CANDIDATE, WORKER
from losslab.search.store.storage import open_storage

from .cluster import census, retried, start_worker, write_cluster_study

pytestmark = pytest.mark.slow


def _finish(workers, timeout=900):
    outputs = [w.communicate(timeout=timeout)[0] for w in workers]
    codes = [w.returncode for w in workers]
    return codes, "\n=====\n".join(outputs)


def test_four_workers_share_one_study(tmp_path, database, mlflow_server):
    trials = 8
    path = write_cluster_study(tmp_path, trials)
    started = time.monotonic()
    workers = [start_worker(path, database, mlflow_server.uri, f"node{i}") for i in range(4)]
    codes, output = _finish(workers)
    wall = time.monotonic() - started
    assert codes == [0, 0, 0, 0], output[-5000:]
    found = census(database, mlflow_server.uri, tmp_path.name)
    print(
        f"4 workers: {len(found.counted)} counted trials, {found.duplicates} duplicates, "
        f"{len(found.lost_metrics)} runs missing metrics, {wall:.0f} s"
    )
    assert len(found.counted) == trials  # reserved before training: no overshoot
    assert found.running == 0
    assert found.duplicates == 0, found.duplicated  # no evaluation key trained twice
    assert found.parents == 1
    assert found.unmatched == []  # every trial has one finished MLflow run
    assert found.lost_metrics == []
    hosts = {t.user_attrs[WORKER].rpartition(":")[0] for t in found.counted}
    assert len(hosts) >= 2  # the trials were shared, not run by one worker


def _wait_for(predicate, timeout=300, poll=0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("timed out")


def test_a_killed_workers_trial_is_reclaimed_and_run_once(tmp_path, database, mlflow_server):
    trials = 6
    path = write_cluster_study(
        tmp_path,
        trials,
        workers={"stale_after": 8, "heartbeat": 1},
        fidelity={"epochs": 2, "steps_per_epoch": 6},
    )
    victim = start_worker(path, database, mlflow_server.uri, "node0")
    storage = open_storage(database)

    def training_in_victim():
        try:
            study = optuna.load_study(study_name="cluster", storage=storage)
        except KeyError:
            return None
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if CANDIDATE in trial.user_attrs and trial.user_attrs.get(WORKER, "").startswith(
                "node0:"
            ):
                return trial.number
        return None

    others = [start_worker(path, database, mlflow_server.uri, f"node{i}") for i in (1, 2)]
    number = _wait_for(training_in_victim)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    codes, output = _finish(others)
    assert codes == [0, 0], output[-5000:]
    found = census(database, mlflow_server.uri, tmp_path.name)
    print(
        f"kill -9: trial {number} reclaimed; {len(found.counted)} counted, "
        f"{found.duplicates} duplicates, {time.monotonic() - killed_at:.0f} s after the kill"
    )
    (cut,) = [t for t in found.interrupted if t.number == number]
    assert "node0" in cut.user_attrs["losslab.interrupted"]
    again = retried(found, number)
    assert len(again) == 1  # run again once, by a live worker
    assert not again[0].user_attrs[WORKER].startswith("node0:")
    assert len(found.counted) == trials
    assert found.duplicates == 0, found.duplicated
    assert found.unmatched == [] and found.lost_metrics == []
    assert found.running == 0


def _some_trial_finished(storage):
    """A predicate: whether the study holds a completed trial yet."""

    def finished():
        try:
            study = optuna.load_study(study_name="cluster", storage=storage)
        except KeyError:
            return False
        return any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))

    return finished


def test_workers_ride_out_an_mlflow_server_restart(tmp_path, database, mlflow_server):
    trials = 6
    path = write_cluster_study(tmp_path, trials, fidelity={"epochs": 2, "steps_per_epoch": 6})
    workers = [start_worker(path, database, mlflow_server.uri, f"node{i}") for i in range(2)]
    _wait_for(_some_trial_finished(open_storage(database)))
    mlflow_server.stop()
    time.sleep(3)
    mlflow_server.start()
    codes, output = _finish(workers)
    assert codes == [0, 0], output[-5000:]
    found = census(database, mlflow_server.uri, tmp_path.name)
    print(
        f"MLflow restart: {len(found.counted)} counted, {len(found.lost_metrics)} runs "
        "missing metrics"
    )
    assert len(found.counted) == trials
    assert found.duplicates == 0, found.duplicated
    assert found.unmatched == [] and found.lost_metrics == []


def test_workers_wait_for_an_unreachable_database(tmp_path, postgres, database, mlflow_server):
    trials = 6
    path = write_cluster_study(tmp_path, trials, fidelity={"epochs": 2, "steps_per_epoch": 6})
    workers = [start_worker(path, database, mlflow_server.uri, f"node{i}") for i in range(2)]
    _wait_for(_some_trial_finished(open_storage(database)))
    postgres.stop()
    restart = threading.Timer(5.0, postgres.start)
    restart.start()
    restart.join()
    codes, output = _finish(workers)
    assert codes == [0, 0], output[-5000:]
    assert "unreachable" in output  # the workers said why they waited
    found = census(database, mlflow_server.uri, tmp_path.name)
    print(f"PostgreSQL down 5 s: {len(found.counted)} counted, {found.duplicates} duplicates")
    assert len(found.counted) == trials
    assert not [t for t in found.counted if t.state == TrialState.FAIL]
    assert found.duplicates == 0, found.duplicated
    assert found.unmatched == [] and found.lost_metrics == []


def test_workers_share_each_generation_of_the_genetic_search(tmp_path, database, mlflow_server):
    population, generations = 4, 2
    path = write_cluster_study(
        tmp_path,
        population * generations,
        backend="gp",
        space={"target": "loss", "seeds": ["dice", "ce", "focal", "tversky"]},
        gp={"population": population, "generations": generations, "screen_steps": 60},
        workers={"stale_after": 20, "heartbeat": 2, "batch": 1},
    )
    workers = [start_worker(path, database, mlflow_server.uri, f"node{i}") for i in range(3)]
    codes, output = _finish(workers)
    assert codes == [0, 0, 0], output[-5000:]
    found = census(database, mlflow_server.uri, tmp_path.name)
    by_generation: dict[int, list] = {}
    for trial in found.counted:
        by_generation.setdefault(
            trial.user_attrs["losslab.params"]["gp.generation"],
            [],
        ).append(trial)
    print(
        f"GP over 3 workers: {len(found.counted)} counted, {found.duplicates} duplicates, "
        f"generations {sorted((g, len(t)) for g, t in by_generation.items())}"
    )
    assert sorted(by_generation) == [0, 1]  # both generations, each screened to <= population
    assert found.duplicates == 0, found.duplicated
    assert found.unmatched == [] and found.lost_metrics == []
    expressions = [t.user_attrs["losslab.params"]["gp.expression"] for t in found.counted]
    assert len(set(expressions)) == len(expressions)  # no individual proposed twice
    first, second = by_generation[0], by_generation[1]
    assert len({t.user_attrs[WORKER] for t in first}) >= 2  # a generation spread over workers
    # The next generation is bred from the whole of the previous one's fitness.
    assert max(t.datetime_complete for t in first) <= min(t.datetime_start for t in second)
