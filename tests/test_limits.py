"""One table of ceilings: every numeric setting has one, a study file beyond any is refused
before anything is created, and docs/limits.md lists the table."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from losslab.data import DataConfig
from losslab.errors import ConfigError
from losslab.limits import CEILINGS, at_most, ceiling_of, ceilings_markdown, check_ceilings
from losslab.search.fidelity import Fidelity
from losslab.search.gp.evolution import Variation
from losslab.search.gp.settings import GpSettings
from losslab.search.greedy.settings import GreedySettings
from losslab.search.ml3.meta import MetaConfig
from losslab.search.ml3.settings import Ml3Settings
from losslab.search.objective import Objective
from losslab.search.optuna.settings import _COUNTS
from losslab.search.study_config import Budget
from losslab.search.workers import WorkerSettings
from losslab.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

# Numeric fields that are not a setting a user sizes: data.labels maps label values to names.
NOT_SIZED = {"data.labels", "ml3.meta"}


def _numeric_fields(section: str, cls: type) -> list[str]:
    return [
        f"{section}.{f.name}"
        for f in dataclasses.fields(cls)
        if re.search(r"\b(int|float)\b", str(f.type))
        and f"{section}.{f.name}" not in NOT_SIZED
        and str(f.type) != "bool"
    ]


@pytest.mark.parametrize(
    ("section", "cls"),
    [
        ("train", TrainConfig),
        ("data", DataConfig),
        ("fidelity", Fidelity),
        ("budget", Budget),
        ("objective", Objective),
        ("workers", WorkerSettings),
        ("greedy", GreedySettings),
        ("ml3", MetaConfig),
        ("ml3", Ml3Settings),
        ("gp", GpSettings),
        ("gp", Variation),
    ],
)
def test_every_numeric_setting_has_a_ceiling(section, cls):
    fields = _numeric_fields(section, cls)
    assert fields, cls
    missing = [key for key in fields if ceiling_of(key) is None]
    assert not missing


def test_every_optuna_count_has_its_ceiling_from_the_table():
    for key, (_, most) in _COUNTS.items():
        row = CEILINGS.get(f"optuna.pruner.{key}") or CEILINGS[f"optuna.sampler.{key}"]
        assert most == row.most


def test_docs_list_the_table():
    assert ceilings_markdown() in (ROOT / "docs" / "limits.md").read_text()


@pytest.mark.parametrize(
    "value", [1e30, -1e30, math.nan, math.inf, [1, 2, 10**9], {"a": 1e9}, [[1], [2e9]]]
)
def test_a_value_beyond_its_ceiling_is_refused_naming_key_and_ceiling(value):
    with pytest.raises(ConfigError, match=r"f.yaml: train.epochs: .* is more than 100,000"):
        at_most(value, "train.epochs", "f.yaml: train.epochs")


@pytest.mark.parametrize("value", [0, 100_000, -3, [1, 2], True, "text", None])
def test_a_value_within_its_ceiling_or_not_a_number_passes(value):
    at_most(value, "train.epochs")


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"fidelity": {"epochs": 1e30}}, "fidelity.epochs"),
        ({"final": {"long": {"steps_per_epoch": 10**9}}}, "final.long.steps_per_epoch"),
        ({"final": {"epochs": 10**9}}, "final.epochs"),
        ({"space": {"train": {"lr": {"float": [1e-3, 1e30]}}}}, "space.train.lr"),
        ({"optuna": {"pruner": {"name": "median", "n_warmup_steps": 10**9}}}, "optuna.pruner"),
        ({"seed": 2**40}, "seed"),
    ],
)
def test_check_ceilings_walks_a_whole_study_mapping(raw, key):
    with pytest.raises(ConfigError, match=rf"^s.yaml: {re.escape(key)}"):
        check_ceilings(raw, "s.yaml: ")


def test_every_numeric_schedule_parameter_has_a_ceiling():
    import inspect

    from losslab.schedules import registry

    missing = []
    for section, table in (
        ("class_schedule", registry._CLASS_SCHEDULES),
        ("term_schedule", registry._TERM_SCHEDULES),
        ("param_schedule", registry._PARAM_SCHEDULES),
    ):
        for cls in table.values():
            for param in list(inspect.signature(cls.__init__).parameters.values())[1:]:
                numeric = type(param.default) in (int, float)
                listed = param.name in ("weights", "frequencies", "steps")
                sized = param.name not in ("num_classes", "num_terms")
                if (numeric or listed) and sized and not ceiling_of(f"{section}.{param.name}"):
                    missing.append(f"{section}.{param.name}")
    assert not missing


@pytest.mark.parametrize(
    ("kind", "name", "params", "key"),
    [
        ("class", "cbs", {"cap": 1e30}, "cap"),
        ("class", "pcf", {"delta": 10**12}, "delta"),
        ("class", "rule", {"expression": "w", "cap": 1e30}, "cap"),
        ("term", "softadapt", {"beta": 1e30}, "beta"),
    ],
)
def test_a_schedule_parameter_beyond_its_ceiling_is_refused_naming_it(kind, name, params, key):
    from losslab.config import check_schedule

    with pytest.raises(ConfigError, match=rf"^b\[0\]\.s\.{key}: .* the most allowed"):
        check_schedule(kind, name, params, num_terms=2, where="b[0].s")
