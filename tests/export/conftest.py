"""Fixtures of the export tests: a tiny phantom and a config of losslab's own trainer."""

from __future__ import annotations

import pytest

from losslab.data import load_dataset
from losslab.losses import learned_term
from losslab.training import TrainConfig


@pytest.fixture(scope="session")
def tiny_phantom():
    """Four 16^3 phantom cases."""
    return load_dataset("phantom", cases=4, shape=(16, 16, 16), seed=0)


@pytest.fixture
def short_config() -> TrainConfig:
    """Four epochs of two steps on the CPU (the trainer's step counts for the schedules)."""
    return TrainConfig(
        model_size="tiny",
        epochs=4,
        steps_per_epoch=2,
        batch_size=2,
        patch_size=(16, 16, 16),
        device="cpu",
        hd95=False,
    )


@pytest.fixture
def lossnet_folder(tmp_path, monkeypatch):
    """An empty search path for learned loss networks but for ``tmp_path / "nets"``."""
    monkeypatch.setattr(learned_term, "_ADDED", [])
    monkeypatch.delenv(learned_term.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "nets"
    learned_term.add_search_folder(folder)
    return folder
