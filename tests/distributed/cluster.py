"""A study run by worker processes, as on a cluster, and what its stores hold afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState
from search.studies import BASE  # the tiny study of the search tests

from losslab.search.store.optuna_store import INTERRUPTED, RETRY_OF, RUN_ID
from losslab.search.store.storage import open_storage
from losslab.tracking.tracker import Tracker

__all__ = ["Census", "census", "start_worker", "write_cluster_study"]

EPOCHS = 2


def write_cluster_study(folder: Path, trials: int, **changes: Any) -> Path:
    """A tiny study whose storage and MLflow server are given on each worker's command line."""
    config = {
        **BASE,
        "study": "cluster",
        "experiment": folder.name,  # one per test: the tests share one MLflow server
        "budget": {"trials": trials},
        "fidelity": {"epochs": EPOCHS, "steps_per_epoch": 3},
        "optuna": {"sampler": {"name": "random", "seed": 3}},
        **changes,
    }
    if config.get("backend", "optuna") != "optuna":
        del config["optuna"]
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def start_worker(path: Path, storage: str, tracking_uri: str, host: str) -> subprocess.Popen:
    """``losslab search`` as a worker on the machine ``host`` (its worker id's host part)."""
    command = [
        sys.executable,
        "-m",
        "losslab.cli.main",
        "search",
        str(path),
        "--no-progress",
        "--storage",
        storage,
        "--tracking-uri",
        tracking_uri,
    ]
    env = {**os.environ, "LOSSLAB_WORKER_HOST": host}
    return subprocess.Popen(
        command,
        cwd=path.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@dataclass
class Census:
    counted: list[optuna.trial.FrozenTrial]  # finished entries that count against the budget
    interrupted: list[optuna.trial.FrozenTrial]  # cut short (killed or over the budget)
    running: int
    duplicates: int  # evaluation keys trained by more than one run
    duplicated: list[str]  # those runs: key, worker, role, status (for the failure message)
    parents: int
    unmatched: list[int]  # counted trials without exactly one finished run
    lost_metrics: list[str]  # finished runs missing a metric of an epoch or of the end


def census(storage: str, tracking_uri: str, experiment: str, name: str = "cluster") -> Census:
    study = optuna.load_study(study_name=name, storage=open_storage(storage))
    trials = study.get_trials(deepcopy=False)
    counted = [t for t in trials if t.state.is_finished() and INTERRUPTED not in t.user_attrs]
    interrupted = [t for t in trials if INTERRUPTED in t.user_attrs]
    running = sum(t.state == TrialState.RUNNING for t in trials)
    tracker = Tracker(tracking_uri, experiment=experiment)
    runs = tracker.find_runs()
    by_id = {r.run_id: r for r in runs}
    trained = [
        r
        for r in runs
        if r.tags.get("losslab.role") in ("trial", "baseline")
        and r.tags.get("status") != "interrupted"
    ]
    keys = [r.tags["losslab.eval_key"] for r in trained]
    unmatched, lost = [], []
    for trial in counted:
        run = by_id.get(trial.user_attrs.get(RUN_ID, ""))
        if run is None or run.status == "RUNNING":
            unmatched.append(trial.number)
            continue
        if trial.state == TrialState.COMPLETE and "losslab.cached_from" not in trial.user_attrs:
            history = tracker.client.get_metric_history(run.run_id, "train_loss")
            if len(history) != EPOCHS or "objective" not in run.metrics:
                lost.append(run.run_id)
    return Census(
        counted=counted,
        interrupted=interrupted,
        running=running,
        duplicates=len(keys) - len(set(keys)),
        duplicated=[
            " ".join(
                str(r.tags.get(k)) for k in ("losslab.eval_key", "losslab.worker", "mlflow.runName")
            )
            + f" {r.status} {r.tags.get('status')}"
            for r in trained
            if keys.count(r.tags["losslab.eval_key"]) > 1
        ],
        parents=sum(r.tags.get("losslab.role") == "study" for r in runs),
        unmatched=unmatched,
        lost_metrics=lost,
    )


def retried(census: Census, number: int) -> list[optuna.trial.FrozenTrial]:
    """The counted entries that ran the interrupted entry ``number`` again."""
    return [t for t in census.counted if t.user_attrs.get(RETRY_OF) == number]
