"""Fixtures for every test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def cache_root(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private ``LOSSLAB_CACHE`` for every test (and the processes it starts): no test writes
    into the user's cache."""
    root = tmp_path_factory.mktemp("losslab-cache")
    monkeypatch.setenv("LOSSLAB_CACHE", str(root))
    return root


@pytest.fixture(autouse=True)
def no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluations draw no PNGs (``LOSSLAB_PLOTS=0``): about half a second each, hundreds of
    times over. The tests of the plots and of the report turn them back on."""
    monkeypatch.setenv("LOSSLAB_PLOTS", "0")


# The fast subset (``python -m pytest -m fast``, under 3 minutes on two cores): the unit tests
# of the layers below the study loop and of the inputs' checks, without the slow ones. The whole
# suite (``python -m pytest``) is what CI runs.
FAST = (
    "tests/losses/",
    "tests/schedules/",
    "tests/data/",
    "tests/export/test_module.py",
    "tests/search/test_calibration.py",
    "tests/search/test_comparison_stats.py",
    "tests/search/test_distributions.py",
    "tests/search/test_fidelity.py",
    "tests/search/test_objective.py",
    "tests/search/test_space.py",
    "tests/search/test_study_precheck.py",
    "tests/search/test_store_budget.py",
    "tests/search/test_verdict.py",
    "tests/test_candidate.py",
    "tests/test_candidate_checks.py",
    "tests/test_classwise.py",
    "tests/test_config.py",
    "tests/test_hints.py",
    "tests/test_layering.py",
    "tests/test_limits.py",
    "tests/test_rank_stats.py",
    "tests/test_stats.py",
    "tests/test_strict_yaml.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        if where.startswith(FAST) and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.fast)
