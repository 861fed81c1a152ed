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
