from __future__ import annotations

import pytest

from losslab.data import load_dataset


@pytest.fixture(scope="session")
def tiny_phantom():
    """Six 16^3 phantom cases (split 4 train / 1 val / 1 test); tests must not change it."""
    return load_dataset("phantom", cases=6, shape=(16, 16, 16), seed=0)


@pytest.fixture(autouse=True)
def _fresh_fake_trainer():
    """The fake trainer's class settings never leak from one test into the next."""
    from losslab.testing.fakes import FakeTrainer

    yield
    FakeTrainer.reset()
