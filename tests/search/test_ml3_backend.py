"""The ml3 backend in a study: its section and space are checked by key, a study meta-trains its
networks and evaluates each snapshot as a candidate (real trainer, the curve on the parent run,
the network files in the trial runs), a failed meta-training is a failed trial and the study
goes on, and a resumed study meta-trains only the networks it has not finished. Budget, rerun,
workers and NaN candidates are the contract test's (``test_backend_contract.py``)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import torch

from losslab.config import ConfigError
from losslab.losses import learned_term
from losslab.search import Objective, load_study, run_study
from losslab.search.ml3 import backend as ml3_backend
from losslab.search.ml3 import meta as meta_module
from losslab.search.ml3.meta import MetaGradient
from losslab.search.ml3.runner import study_objective_weights
from losslab.tracking.tracker import Tracker

from .fakes import FakeTrainer
from .studies import write_study

TINY = {
    "networks": 1,
    "checkpoints": 2,
    "outer_steps": 4,
    "inner_steps": 1,
    "hidden": [4],
    "patch_size": [8, 8, 8],
    "batch_size": 1,
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    FakeTrainer.trained, FakeTrainer.fail_every, FakeTrainer.epoch_seconds = [], 0, 0.0
    monkeypatch.setattr(learned_term, "_ADDED", [])
    monkeypatch.delenv(learned_term.ENV_VAR, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write(folder: Path, ml3=None, **changes):
    settings = {**TINY, **(ml3 or {})}
    changes.setdefault("space", {"target": "loss"})
    return write_study(folder, backend="ml3", ml3=settings, **changes)


@pytest.mark.parametrize(
    ("ml3", "where"),
    [
        ({"inner_steps": 0}, "ml3.inner_steps"),
        ({"inner_step": 2}, "ml3.inner_step: unknown key"),
        ({"engine": "jax"}, "ml3.engine"),
        ({"worst_k": 0}, "ml3.worst_k"),
        ({"outer_lr": -1.0}, "ml3.outer_lr"),
        ({"networks": 0}, "ml3.networks"),
        ({"checkpoints": 5}, "ml3.checkpoints"),  # more snapshots than the 4 outer steps
        ({"base": "focal"}, "ml3.base"),
        ({"hidden": []}, "ml3.hidden"),
        ({"features": ["p", "q"]}, "ml3.features"),
        ({"patch_size": [8, 8]}, "ml3.patch_size"),
        ({"model_size": "huge"}, "ml3.model_size"),
        ({"objective": "median"}, "ml3.objective"),
        ({"first_order": True}, "ml3.first_order: unknown key"),
    ],
)
def test_a_bad_ml3_setting_is_named(tmp_path, ml3, where):
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_study(_write(tmp_path, ml3))


def test_higher_missing_when_chosen_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "higher", None)
    with pytest.raises(ConfigError, match=r"ml3\.engine: 'higher' cannot be imported"):
        load_study(_write(tmp_path, {"engine": "higher"}))


@pytest.mark.parametrize(
    ("space", "where"),
    [
        ({"loss": {"dice": {}}}, "space.target"),
        ({"target": "class_schedule"}, "space.target"),
        ({"target": "loss", "loss": {"dice": {}}}, "space.loss"),
        ({"target": "loss", "class_schedule": ["uniform", "cbs"]}, "space.class_schedule"),
        (
            {"target": "loss", "class_schedule": {"cbs": {"zeta": {"float": [0.1, 0.5]}}}},
            "space.class_schedule.cbs.zeta",
        ),
    ],
)
def test_a_space_the_ml3_backend_cannot_search_is_named(tmp_path, space, where):
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_study(_write(tmp_path, space=space))


def test_the_meta_objective_follows_the_study_objective():
    dice = torch.tensor([0.9, 0.8, 0.2, 0.5])

    def value(objective: Objective, k=None) -> float:
        v = study_objective_weights(objective, 0.01, k)(dice)
        return float((v * dice).sum() / v.sum())

    assert value(Objective("mean")) == pytest.approx(0.5, abs=1e-6)
    assert value(Objective("min")) == pytest.approx(0.2, abs=1e-3)
    assert value(Objective("worst_k", k=2)) == pytest.approx(0.35, abs=1e-3)
    assert value(Objective("worst_k", k=2), k=1) == pytest.approx(0.2, abs=1e-3)
    mix = Objective("mix", weights={"mean": 0.5, "min": 0.5})
    assert value(mix) == pytest.approx(0.35, abs=1e-3)


def test_a_study_meta_trains_and_evaluates_each_snapshot(tmp_path):
    config = load_study(
        _write(tmp_path, budget={"trials": 2}, fidelity={"epochs": 1, "steps_per_epoch": 2})
    )
    outcome = run_study(config, progress=False)
    assert [r.status for r in outcome.records] == ["ok", "ok"]
    assert [r.candidate.name for r in outcome.records] == [
        "ml3-0@2 (dice base)",
        "ml3-0@4 (dice base)",
    ]
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    parent = tracker.client.get_run(outcome.parent_run_id)
    hashes = parent.data.tags["ml3.0.hashes"].split(",")
    assert parent.data.tags["ml3.0.status"] == "ok" and len(hashes) == 2
    for name in ("outer_loss", "val_objective"):
        curve = tracker.client.get_metric_history(outcome.parent_run_id, f"ml3/0/{name}")
        assert sorted(m.step for m in curve) == [0, 1, 2, 3]
        assert all(0 <= m.value <= 1 for m in curve)
    for record, digest in zip(outcome.records, hashes):
        assert [str(t) for t in record.candidate.terms] == [f"lossnet:{digest}"]
        stored = tmp_path / "lossnets" / f"{digest}.lossnet"  # beside the study's journal
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == digest
        listed = [a.path for a in tracker.client.list_artifacts(record.run_id, "lossnets")]
        assert listed == [f"lossnets/{digest}.lossnet"]
    assert run_study(config, progress=False).trained == 0


def test_a_failed_meta_training_is_a_failed_trial_and_the_study_goes_on(tmp_path, monkeypatch):
    real, calls = meta_module.meta_gradient, []

    def poisoned(*args, **kwargs) -> MetaGradient:  # network 0 only: every meta-step is NaN
        mg = real(*args, **kwargs)
        calls.append(1)
        if len(calls) > 6:
            return mg
        return MetaGradient(
            mg.outer_loss * float("nan"), mg.val_objective, mg.dice, mg.grads, mg.params
        )

    monkeypatch.setattr(meta_module, "meta_gradient", poisoned)
    config = load_study(
        _write(tmp_path, {"networks": 2, "checkpoints": 1, "outer_steps": 6}, budget={"trials": 2})
    )
    outcome = run_study(config, progress=False, trainer=FakeTrainer)
    first, second = outcome.records
    assert first.status == "failed" and first.candidate is None
    assert "network 0 failed" in first.reason and "5 non-finite meta-steps in a row" in first.reason
    assert second.status == "ok" and second.candidate.name == "ml3-1 (dice base)"
    parent = Tracker(config.tracking_uri, experiment=config.experiment).client.get_run(
        outcome.parent_run_id
    )
    assert parent.data.tags["ml3.0.status"] == "failed" and parent.data.tags["ml3.1.status"] == "ok"


def test_a_resumed_study_meta_trains_only_what_it_had_not_finished(tmp_path, monkeypatch):
    real, trained = ml3_backend.meta_train_network, []
    stop_in = {1}  # the meta-training of network 1 is killed at its 3rd outer step

    def spy(settings, dataset, train, objective, seed, folder, on_step=None):
        network = len(trained)
        trained.append(seed)

        def step(s, outer, value):
            if network in stop_in and s == 2:
                raise KeyboardInterrupt("killed during meta-training")
            on_step(s, outer, value)

        return real(settings, dataset, train, objective, seed, folder, on_step=step)

    monkeypatch.setattr(ml3_backend, "meta_train_network", spy)
    config = load_study(
        _write(tmp_path, {"networks": 2, "checkpoints": 1, "outer_steps": 4}, budget={"trials": 2})
    )
    with pytest.raises(KeyboardInterrupt):
        run_study(config, progress=False, trainer=FakeTrainer)
    assert len(trained) == 2 and len(FakeTrainer.trained) == 2  # the baseline, network 0's trial
    # A new process would find this worker dead; here the entry reserved for network 1 is
    # reclaimed by making every worker look stale.
    for module in ("optuna_store", "reruns"):  # claims' holders and the reclaim of entries
        monkeypatch.setattr(f"losslab.search.store.{module}.is_stale", lambda *a, **k: True)
    stop_in.clear()
    outcome = run_study(config, resume=True, progress=False, trainer=FakeTrainer)
    assert trained[2:] == [trained[1]]  # network 1 again, from its seed; network 0 not again
    assert [r.candidate.name for r in outcome.records] == ["ml3-0 (dice base)", "ml3-1 (dice base)"]
    assert all(r.status == "ok" for r in outcome.records)
    assert len(FakeTrainer.trained) == len(set(FakeTrainer.trained)) == 3
