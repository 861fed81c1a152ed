"""What the author of a search backend runs: the backend contract suite, a fake trainer
and tiny study files (needs pytest).

    from losslab.testing import BackendContractTests

    class TestMyBackend(BackendContractTests):
        backend_name = "mine"
"""

from __future__ import annotations

from losslab.testing.backend_contract import BackendContractTests
from losslab.testing.fakes import FakeTrainer, StopAfter
from losslab.testing.studies import BASE, write_study

__all__ = ["BASE", "BackendContractTests", "FakeTrainer", "StopAfter", "write_study"]
