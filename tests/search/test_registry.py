"""Backends by name; a backend's own section of the study file; the layering of the search
package (the generic study loop imports neither Optuna nor MLflow)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import losslab.search
from losslab.config import ConfigError
from losslab.search import (
    SearchBackend,
    backend_names,
    get_backend,
    load_study,
    register_backend,
    run_study,
)

from .fakes import FakeTrainer, RandomBatchBackend
from .studies import write_study

FINGERPRINT = "a3cf9c8b11f5cb07"  # tests/search/studies.py BASE, before structural spaces
SEARCH = Path(losslab.search.__file__).parent
# The study loop and everything it needs that is not an engine.
GENERIC = [
    "backend",
    "deadline",
    "distributions",
    "evaluator",
    "fidelity",
    "objective",
    "registry",
    "space",
    "study",
    "study_checks",
    "study_config",
    "study_console",
    "study_runs",
    "summary",
    "store.ledger",
    "workers",
]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


def test_no_search_module_imports_both_optuna_and_mlflow():
    for path in SEARCH.rglob("*.py"):
        name = ".".join(path.relative_to(SEARCH).with_suffix("").parts)
        engines = _imports(path) & {"optuna", "mlflow"}
        assert len(engines) < 2, name
        if name in GENERIC:
            assert not engines, f"{name} imports {engines}"


def test_importing_the_study_loop_loads_no_engine():
    """The Optuna store and backend load when a study opens them, not with the loop. (MONAI
    itself imports Optuna and MLflow when they are installed, so those packages as a whole
    cannot be the measure here: the static check above is.)"""
    modules = ", ".join(f"losslab.search.{name}" for name in GENERIC)
    engines = [
        "losslab.search.store.optuna_store",
        "losslab.search.store.storage",
        "losslab.search.optuna.backend",
    ]
    code = f"import sys, {modules}\nprint([m for m in {engines!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_backends_are_found_by_name():
    assert {"optuna", "batch_random"} <= set(backend_names())
    assert get_backend("batch_random") is RandomBatchBackend
    assert issubclass(get_backend("optuna"), SearchBackend)
    with pytest.raises(ValueError, match="'annealing' is not a search backend; known: .*optuna"):
        get_backend("annealing")


def test_a_name_is_registered_once():
    class Other(RandomBatchBackend):
        name = "batch_random"

    with pytest.raises(ValueError, match="already registered"):
        register_backend(Other)
    register_backend(RandomBatchBackend)  # the same class again is fine


def test_a_settings_section_belongs_to_the_study_backend(tmp_path):
    path = write_study(tmp_path, backend="batch_random", optuna={"sampler": "random"})
    with pytest.raises(
        ConfigError, match="optuna: settings of the backend 'optuna'.*'batch_random'"
    ):
        load_study(path)
    path = write_study(tmp_path, batch_random={"size": 3})
    with pytest.raises(ConfigError, match="batch_random: settings of the backend"):
        load_study(path)
    path = write_study(tmp_path, backend="batch_random", batch_random={"size": 3})
    with pytest.raises(ConfigError, match=r"batch_random\.size: unknown key"):
        load_study(path)


def test_whether_a_space_with_nothing_numeric_is_searchable_is_the_backend_s_call(tmp_path):
    fixed = {"loss": {"dice": {}}}
    with pytest.raises(ConfigError, match="space: nothing to search"):
        load_study(write_study(tmp_path, space=fixed))
    config = load_study(write_study(tmp_path, backend="batch_random", space=fixed))
    assert config.backend == "batch_random" and config.space.dimensions() == 0


def test_a_structural_space_is_the_backend_s_to_search(tmp_path):
    """A space with no ``loss`` options but a part its backend declares (``expressions``)."""
    space = {"expressions": ["dice", "vmean(-y * logp) * nc", "focal"]}
    config = load_study(write_study(tmp_path, backend="batch_random", space=space))
    assert config.space.losses == () and config.space.structure == space
    with pytest.raises(ConfigError, match=r"space\.expressions\[1\]"):
        load_study(
            write_study(tmp_path, backend="batch_random", space={"expressions": ["dice", "p +"]})
        )
    with pytest.raises(ConfigError, match=r"space\.expressions: unknown key"):
        load_study(write_study(tmp_path, space=space))  # optuna declares no structural part
    outcome = run_study(config, progress=False, trainer=FakeTrainer)
    assert {r.candidate.name for r in outcome.records} <= set(space["expressions"])
    assert len(outcome.records) == 3


def test_a_numeric_study_keeps_its_fingerprint(tmp_path):
    """Studies started before structural spaces existed resume: the fingerprint of a numeric
    space is unchanged (this value is the one such a study stored)."""
    assert load_study(write_study(tmp_path)).fingerprint == FINGERPRINT


@pytest.mark.parametrize("name", ["optuna", "gp", "greedy", "ml3"])
def test_a_builtin_backend_s_space_keys_are_known_without_importing_it(name):
    from losslab.search.registry import backend_space_keys, get_backend

    assert backend_space_keys(name) == get_backend(name).space_keys


def test_a_registered_backend_section_is_accepted_by_config_files():
    from losslab.cli.support import config_file_keys

    # batch_random is registered by tests/search/fakes.py alone: no hand-kept key list knows it.
    assert RandomBatchBackend.name in backend_names()
    assert RandomBatchBackend.name in config_file_keys()
