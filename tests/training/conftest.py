from __future__ import annotations

import pytest

from losslab.data import load_dataset
from losslab.training import TrainConfig


@pytest.fixture(scope="session")
def phantom():
    """Eight 32^3 phantom cases (split 4 / 2 / 2 or so)."""
    return load_dataset("phantom", cases=8, shape=(32, 32, 32), seed=0)


@pytest.fixture
def tiny_config() -> TrainConfig:
    return TrainConfig(
        model="unet3d",
        model_size="tiny",
        epochs=2,
        steps_per_epoch=4,
        batch_size=2,
        patch_size=(32, 32, 32),
        lr=3e-3,
        device="cpu",
        hd95=False,
    )


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    """One SQLite MLflow store for the session (creating one runs all migrations)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
