"""Every registered backend (the built-in four and ``batch_random`` of ``fakes.py``, built
on nothing but the study store) through ``losslab.testing.BackendContractTests``."""

from __future__ import annotations

import pytest

from losslab.search import backend_names
from losslab.testing import BackendContractTests

from . import fakes  # noqa: F401  (registers batch_random)

# What a backend needs in its study file besides the common part (``studies.BASE``): the gp
# backend evolves the loss from seeds, with small generations; the greedy backend steers three
# starts (plain, controlled and replayed: nine evaluations), deciding at every step; the ml3
# backend meta-trains networks on the phantom (only that costs: the fake trainer trains none).
STUDY_OF = {
    "gp": {
        "space": {"target": "loss", "seeds": ["dice", "ce", "focal", "tversky"]},
        "gp": {"population": 4, "generations": 4, "screen_steps": 60},
        # A worker takes at most 2 individuals at a time: two workers share each generation.
        "workers": {"batch": 2},
    },
    "greedy": {
        "space": {"loss": {"tversky": {}, "f_beta": {}, "focal": {}}},
        "greedy": {"every": 1, "lookahead": 1},
    },
    # ml3 meta-trains two tiny loss networks (8 outer steps, K = 1, 8^3 patches) and proposes
    # four snapshots of each: eight jobs.
    "ml3": {
        "space": {"target": "loss"},
        "ml3": {
            "networks": 2,
            "checkpoints": 4,
            "outer_steps": 8,
            "inner_steps": 1,
            "hidden": [4],
            "patch_size": [8, 8, 8],
            "batch_size": 1,
        },
    },
}


class TestEveryRegisteredBackend(BackendContractTests):
    @pytest.fixture(params=backend_names())
    def backend(self, request) -> str:
        return request.param

    def section(self, backend: str) -> dict:
        return STUDY_OF.get(backend, {})
