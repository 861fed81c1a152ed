"""Two workers share one study through one storage and one MLflow store, as on a cluster."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from losslab.search import load_study
from losslab.search.store.optuna_store import INTERRUPTED
from losslab.search.store.storage import open_storage
from losslab.tracking.tracker import Tracker

from .studies import write_study

pytestmark = pytest.mark.slow


def test_two_workers_split_one_study(tmp_path):
    trials = 6
    path = write_study(
        tmp_path,
        budget={"trials": trials},
        baselines=["dice"],
        optuna={"sampler": {"name": "random", "seed": 2}},
    )
    config = load_study(path)
    command = [sys.executable, "-m", "losslab.cli.main", "search", str(path), "--no-progress"]
    workers = [
        subprocess.Popen(
            command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n=====\n".join(o[-3000:] for o in outputs)
    study = optuna.load_study(study_name=config.name, storage=open_storage(config.storage))
    finished = [t for t in study.trials if t.state.is_finished()]
    # An entry is reserved before it trains and one beyond the budget (two workers reserving
    # at once) is given back: the study holds its budget exactly.
    given_back = [t for t in finished if "over the budget" in t.user_attrs.get(INTERRUPTED, "")]
    finished = [t for t in finished if INTERRUPTED not in t.user_attrs]
    assert len(finished) == trials
    pids = {str(w.pid) for w in workers}
    assert {t.user_attrs["losslab.worker"].rpartition(":")[2] for t in finished} <= pids
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    runs = tracker.find_runs()
    (parent,) = [r for r in runs if r.tags.get("losslab.role") == "study"]
    assert all("losslab.eval_key" not in t.user_attrs for t in given_back)  # never trained
    trained = [t for t in finished if "losslab.cached_from" not in t.user_attrs]
    trial_runs = [r for r in runs if r.tags.get("losslab.role") == "trial"]
    assert sorted(r.run_id for r in trial_runs) == sorted(
        t.user_attrs["losslab.mlflow_run_id"] for t in trained
    )
    assert all(r.tags["mlflow.parentRunId"] == parent.run_id for r in trial_runs)
    assert len({r.tags["losslab.eval_key"] for r in trial_runs}) == len(trial_runs)
    assert not [r for r in runs if r.status == "RUNNING"]
