"""Study YAML files: a valid one loads typed; every bad one names the file and the key path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from losslab.config import ConfigError
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.search.study_config import Budget, load_study

from .studies import write_study

MINIMAL: dict[str, Any] = {
    "study": "unit",
    "budget": {"trials": 5},
    "space": {
        "loss": {"dice": {}, "focal": {"gamma": {"float": [0.5, 4.0]}}},
        "class_schedule": {"uniform": {}, "cbs": {"zeta": {"float": [0.05, 0.5]}}},
    },
}


def write(tmp_path: Path, name: str = "study.yaml", **changes: Any) -> Path:
    """``MINIMAL`` with top-level keys replaced (``None`` removes one), as a YAML file."""
    raw = copy.deepcopy(MINIMAL)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_study(path)
    return info.value


def expect(path: Path, key: str, *words: str) -> ConfigError:
    """The file's load fails at ``key`` and the message holds ``words``."""
    exc = error(path)
    assert exc.where == f"{path}: {key}", exc.where
    assert str(path) in str(exc) and key in str(exc)
    for word in words:
        assert word in exc.problem, exc.problem
    return exc


def test_minimal_config_loads_typed(tmp_path):
    path = write(
        tmp_path,
        fidelity={"epochs": 2, "train_cases": 3},
        objective={"kind": "worst_k", "k": 2},
        train={"lr": 0.003, "device": "cpu"},
        baselines=["dice", {"name": "dice+cbs", "loss": "dice", "class_schedule": "cbs"}],
    )
    config = load_study(path)
    assert config.name == "unit" and config.path == str(path)
    assert [o.label for o in config.space.losses] == ["dice", "focal"]
    assert [o.label for o in config.space.class_schedules] == ["cbs", "uniform"]  # by label
    assert [o.label for o in config.space.term_schedules] == ["static"]
    assert config.space.dimensions() == 4  # loss choice, gamma, schedule choice, zeta
    assert config.budget == Budget(trials=5)
    assert config.fidelity == Fidelity(epochs=2, train_cases=3)
    assert config.objective == Objective("worst_k", k=2)
    assert config.train.lr == 0.003 and config.train.device == "cpu"
    assert [b.name for b in config.baselines] == ["dice", "dice+cbs"]
    assert config.baselines[1].class_schedule.name == "cbs"
    assert (config.backend, config.seed, config.top, config.storage) == ("optuna", 0, 3, None)


def test_study_name_defaults_to_the_file_stem(tmp_path):
    assert load_study(write(tmp_path, "my_search.yaml", study=None)).name == "my_search"


def test_budget_of_minutes_only(tmp_path):
    assert load_study(write(tmp_path, budget={"minutes": 1.5})).budget == Budget(minutes=1.5)


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"epochs": 3}, "epochs", ["unknown key"]),
        (
            {"space": {"lossses": {"dice": {}}, "loss": ["dice", "focal"]}},
            "space.lossses",
            ["unknown key"],
        ),
        ({"budget": {"trials": "ten"}}, "budget.trials", ["'ten'", "positive integer"]),
        ({"budget": {"trials": 0}}, "budget.trials", ["positive integer"]),
        ({"budget": {"trials": 3, "hours": 2}}, "budget", ["'hours'"]),
        ({"budget": {"minutes": 0}}, "budget.minutes", ["> 0"]),
        ({"seed": -1}, "seed", ["non-negative integer", "-1"]),
        ({"seed": 1.5}, "seed", ["non-negative integer"]),
        ({"top": 0}, "top", ["positive integer"]),
        ({"study": 5}, "study", ["must be a string"]),
        ({"train": {"epochs": "x"}}, "train.epochs", ["epochs", "'x'"]),
        ({"train": {"epoch": 2}}, "train", ["'epoch'"]),
        ({"fidelity": {"epochs": 0}}, "fidelity.epochs", ["Fidelity.epochs=0"]),
        ({"fidelity": {"epoch": 2}}, "fidelity", ["'epoch'"]),
        ({"objective": {"kind": "median"}}, "objective", ["'median'"]),
        ({"data": {"source": "nowhere"}}, "data", ["nowhere"]),
        ({"backend": "ray"}, "backend", ["'ray'"]),
        ({"optuna": {"pruner": {"name": "bogus"}}}, "optuna.pruner.name", ["'bogus'", "hyperband"]),
        ({"optuna": {"sampler": "cmaes"}}, "optuna.sampler.name", ["'cmaes'"]),
        ({"optuna": {"sampler": {"name": "random", "bogus": 1}}}, "optuna.sampler", ["bogus"]),
        ({"optuna": {"pruner": {"name": "median", "bogus": 1}}}, "optuna.pruner", ["bogus"]),
        ({"optuna": {"samplr": "tpe"}}, "optuna.samplr", ["unknown key"]),
        ({"budget": {}}, "budget", ["'trials', 'minutes'"]),
        ({"budget": None}, "budget", ["'trials', 'minutes'"]),
        ({"baselines": ["dice", {"loss": "dice"}]}, "baselines", ["share a name"]),
        ({"baselines": [{"loss": "dicee"}]}, "baselines[0].loss", ["dicee"]),
        ({"baselines": [{"loss": "dice", "colour": 1}]}, "baselines[0].colour", ["unknown key"]),
    ],
)
def test_bad_top_level_value_names_the_key(tmp_path, changes, key, words):
    expect(write(tmp_path, **changes), key, *words)


HYPERBAND = {"name": "hyperband", "min_resource": 1, "reduction_factor": 3}
NONSENSE = [
    ({"train": {"model": "unet9d"}}, "train.model", ["'unet9d'", "unet3d"]),
    ({"train": {"model_size": "huge"}}, "train.model_size", ["'huge'", "tiny"]),
    ({"train": {"model": "unetr", "patch_size": [24, 24, 24]}}, "train.patch_size", ["multiple of 16"]),
    ({"train": {"model_overrides": {"chanels": [4, 8]}}}, "train.model_overrides", ["'chanels'"]),
    ({"space": {**MINIMAL["space"], "train": {"model": {"choice": ["unet3d", "unet9d"]}}}}, "space.train.model", ["'unet9d'"]),
    ({"objective": {"kind": "worst_k", "k": 500}}, "objective.k", ["k=500", "13 foreground classes"]),
    ({"objective": {"kind": "mix", "k": 14, "weights": {"mean": 0.5, "worst_k": 0.5}}}, "objective.k", ["13 foreground"]),
    ({"optuna": {"sampler": {"name": "tpe", "n_startup_trials": -5}}}, "optuna.sampler.n_startup_trials", ["-5"]),
    ({"optuna": {"sampler": {"name": "tpe", "multivariate": "yes"}}}, "optuna.sampler.multivariate", ["true or false"]),
    ({"optuna": {"pruner": {**HYPERBAND, "min_resource": 0}}}, "optuna.pruner.min_resource", ["got 0"]),
    ({"optuna": {"pruner": {**HYPERBAND, "reduction_factor": 1}}}, "optuna.pruner.reduction_factor", ["got 1"]),
    ({"optuna": {"pruner": {**HYPERBAND, "min_resource": 9}}, "fidelity": {"epochs": 4}}, "optuna.pruner.min_resource", ["4 epoch"]),
    ({"optuna": {"pruner": {"name": "median", "n_warmup_steps": -1}}}, "optuna.pruner.n_warmup_steps", ["-1"]),
    ({"data": {"source": "phantom", "shape": [24, 24, 24]}, "train": {"patch_size": [32, 32, 32]}}, "train.patch_size", ["[32, 32, 32]", "24x24x24"]),
    ({"data": {"source": "phantom", "shape": [24, 24, 24]}, "fidelity": {"patch_size": [16, 32, 16]}}, "fidelity.patch_size", ["[16, 32, 16]"]),
    ({"tracking_uri": "bogus://x"}, "tracking_uri", ["'bogus://x'", "sqlite"]),
    ({"fidelity": {"epochs": 10**30}}, "fidelity.epochs", ["the most allowed"]),
    ({"fidelity": {"steps_per_epoch": 10**12}}, "fidelity.steps_per_epoch", ["the most allowed"]),
    ({"train": {"epochs": 10**9}}, "train.epochs", ["the most allowed"]),
    ({"train": {"batch_size": 10**6}}, "train.batch_size", ["the most allowed"]),
    ({"budget": {"trials": 10**9}}, "budget.trials", ["the most allowed"]),
    ({"budget": {"minutes": 1e12}}, "budget.minutes", ["the most allowed"]),
    ({"data": {"source": "phantom", "cases": 10**9}}, "data.cases", ["the most allowed"]),
    ({"data": {"source": "phantom", "shape": [4096, 32, 32]}}, "data.shape", ["the most allowed"]),
    ({"seed": 2**40}, "seed", ["the most allowed"]),
    ({"space": {**MINIMAL["space"], "train": {"epochs": {"int": [1, 10**9]}}}}, "space.train.epochs", ["the most allowed"]),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "key", "words"), NONSENSE)
def test_nonsense_for_the_network_data_or_optuna_names_the_key(tmp_path, changes, key, words):
    expect(write(tmp_path, **changes), key, *words)


def test_a_missing_decathlon_folder_is_named_at_load(tmp_path):
    data = {"source": "decathlon", "data_dir": str(tmp_path / "Task09_Spleen")}
    expect(write(tmp_path, data=data), "data.data_dir", "does not exist")
    (tmp_path / "Task09_Spleen").mkdir()
    expect(write(tmp_path, data=data), "data.data_dir", "dataset.json")


SPACE_ERRORS = [
    ({"loss": {"dice": {}, "dicee": {}}}, "space.loss.dicee.loss", ["unknown loss 'dicee'"]),
    ({"loss": {"mix": {"terms": ["ce", "dicee"]}, "dice": {}}}, "space.loss.mix.terms", ["dicee"]),
    ({"loss": {"focal": {"gammma": {"float": [0.5, 4.0]}}}}, "space.loss.focal.gammma", ["gamma"]),
    ({"loss": {"focal": {"gamma": {"flaot": [0.5, 4.0]}}}}, "space.loss.focal.gamma", ["'flaot'"]),
    ({"loss": {"dice_ce": {"term_weights": [1.0, 1.0, {"float": [0.1, 1.0]}]}}}, "space.loss.dice_ce.term_weights", ["3 weights for 2 terms"]),
    ({"loss": ["dice", {"focal": {}}]}, "space.loss", ["names only"]),
    ({"loss": ["dice", "focal"], "class_schedule": ["uniform", "cbss"]}, "space.class_schedule.cbss", ["'cbss'"]),
    ({"loss": ["dice", "focal"], "class_schedule": {"cbs": {"zetta": {"float": [0.1, 0.5]}}}}, "space.class_schedule.cbs.zetta", ["zetta", "zeta"]),
    ({"loss": ["dice", "focal"], "class_schedule": {"tcf": {"threshold": {"float": [0.5, 1.5]}}}}, "space.class_schedule.tcf.threshold", ["1.5"]),
    ({"loss": ["dice", "dice_ce"], "term_schedule": ["ramp"]}, "space.term_schedule.ramp", ["'dice'"]),
    ({"loss": ["dice", "focal"], "train": {"lrr": {"float": [1e-3, 1e-2]}}}, "space.train.lrr", ["not a train setting"]),
    ({"loss": ["dice", "focal"], "train": {"seed": {"int": [0, 3]}}}, "space.train.seed", ["study's"]),
    ({"loss": ["dice", "focal"], "train": {"lr": {"float": [0.0, 1e-2]}}}, "space.train.lr", ["lr=0.0"]),
    ({"class_schedule": ["uniform", "cbs"]}, "space.loss", ["missing"]),
    ({}, "space", ["empty"]),
    ({"loss": {}}, "space.loss", ["empty"]),
    ({"loss": {"dice": {}}}, "space", ["nothing to search"]),
    ({"loss": {"focal": {"gamma": 2.0}}, "class_schedule": ["cbs"]}, "space", ["nothing to search"]),
]  # fmt: skip


@pytest.mark.parametrize(("space", "key", "words"), SPACE_ERRORS)
def test_bad_space_names_the_key_path(tmp_path, space, key, words):
    expect(write(tmp_path, space=space), key, *words)


def test_missing_space_is_an_error(tmp_path):
    expect(write(tmp_path, space=None), "space", "empty")


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("study: x\nspace: {loss: [dice\n")
    exc = error(path)
    assert exc.where == str(path)
    assert "malformed YAML" in exc.problem


def test_a_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- dice\n- focal\n")
    assert "mapping" in error(path).problem


def test_missing_file(tmp_path):
    exc = error(tmp_path / "absent.yaml")
    assert str(tmp_path / "absent.yaml") in exc.where and "cannot read" in exc.problem


def test_loss_parameter_out_of_range_names_the_parameter(tmp_path):
    space = {"loss": {"dice": {}, "focal": {"gamma": {"float": [0.5, 20.0]}}}}
    expect(write(tmp_path, space=space), "space.loss.focal.gamma", "gamma=20")


def test_unknown_baseline_schedule_is_an_error(tmp_path):
    baselines = [{"name": "x", "loss": "dice", "class_schedule": "cbss"}]
    expect(write(tmp_path, baselines=baselines), "baselines[0].class_schedule", "cbss")


# --- fingerprint -------------------------------------------------------------------------------


def fingerprint(tmp_path: Path, name: str, **changes: Any) -> str:
    return load_study(write(tmp_path, name, **changes)).fingerprint


def test_fingerprint_ignores_budget_storage_and_tracking(tmp_path):
    first = fingerprint(tmp_path, "a.yaml")
    second = fingerprint(
        tmp_path,
        "b.yaml",
        budget={"trials": 50, "minutes": 30},
        storage="sqlite:///elsewhere.db",
        tracking_uri="sqlite:///mlflow.db",
        experiment="other",
        top=5,
        optuna={"sampler": "random", "pruner": "median"},
        baselines=["dice_ce"],
    )
    assert first == second


def test_fingerprint_ignores_layout_and_comments(tmp_path):
    path = write(tmp_path, "a.yaml")
    block = load_study(path).fingerprint
    flow = tmp_path / "flow.yaml"
    text = "# a comment\n" + yaml.safe_dump(copy.deepcopy(MINIMAL), default_flow_style=True)
    flow.write_text(text)
    assert load_study(flow).fingerprint == block


@pytest.mark.parametrize(
    "changes",
    [
        {"space": {"loss": {"dice": {}, "focal": {"gamma": {"float": [0.5, 3.0]}}}}},
        {"space": {"loss": ["dice", "focal", "tversky"]}},
        {"seed": 1},
        {"fidelity": {"epochs": 2}},
        {"objective": {"kind": "min"}},
        {"train": {"lr": 0.01}},
    ],
)
def test_fingerprint_changes_with_what_defines_evaluations(tmp_path, changes):
    assert fingerprint(tmp_path, "a.yaml") != fingerprint(tmp_path, "b.yaml", **changes)


@pytest.mark.parametrize("loss", ["vsum(y)", "cmean(w)", "vmean(where(p > 0.5, y, 0))"])
def test_a_space_loss_without_gradient_path_is_refused(tmp_path, loss):
    space = {"loss": {loss: {}, "dice": {}}, "class_schedule": {"uniform": {}}}
    exc = error(write(tmp_path, space=space))
    assert "space.loss" in exc.where and "no gradient path" in exc.problem


def test_a_space_takes_every_schedule_a_suite_takes(tmp_path):
    """One schedule check for suites and spaces: frequency schedules need no frequencies."""
    space = {
        "loss": {"dice": {}, "ce": {}},
        "class_schedule": ["uniform", "median_frequency", "inverse_frequency"],
    }
    config = load_study(write_study(tmp_path, space=space))
    names = [o.name for o in config.space.class_schedules]
    assert names == ["inverse_frequency", "median_frequency", "uniform"]
