"""What every registered backend must do, whatever it proposes: this test runs each one.

Against a fake trainer (a score from the candidate's key, no network): a study completes its
budget; a rerun trains nothing; a study stopped mid-evaluation and resumed loses and repeats
nothing (the ledger and MLflow agree); a candidate that goes NaN fails alone; two worker
processes share one study without training any evaluation twice or overshooting the budget.
Once against the real trainer on the tiny phantom. A new backend gets all of this by
registering (``losslab.search.register_backend``) and subclassing :class:`BackendContractTests`.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import pytest

from losslab.search import get_backend, load_study, run_study
from losslab.search.store import open_store
from losslab.testing.fakes import FakeTrainer, StopAfter
from losslab.testing.ladder_contract import LadderContractTests
from losslab.testing.studies import run_workers, write_study
from losslab.tracking.tracker import Tracker

__all__ = ["BackendContractTests"]


def _runs(config, role: str):
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    return [r for r in tracker.find_runs() if r.tags.get("losslab.role") == role]


def _ledger(config):
    store = open_store(config.storage, study_name=config.name, fingerprint=config.fingerprint)
    store.open(resume=True, seed=config.seed)
    return store


def _agree(config, outcome) -> None:
    """MLflow holds one finished run per trained entry, and nothing is left running."""
    trained = [r for r in outcome.records if not r.cached_from and r.status != "failed"]
    runs = {r.run_id: r for r in _runs(config, "trial")}
    assert {r.run_id for r in trained} <= set(runs)
    finished = {i for i, r in runs.items() if r.status == "FINISHED"}
    assert finished == {r.run_id for r in outcome.records if not r.cached_from and r.status == "ok"}
    keys = [r.tags["losslab.eval_key"] for r in runs.values() if r.status != "KILLED"]
    assert len(keys) == len(set(keys)), "an evaluation key was trained twice"
    assert not [r for r in runs.values() if r.status == "RUNNING"]


def _worker(path: str, queue, module: str) -> None:
    importlib.import_module(module)  # a fresh process: the backend registers on import
    FakeTrainer.epoch_seconds = 0.3  # both workers start before the budget is spent
    outcome = run_study(load_study(path), progress=False, trainer=FakeTrainer)
    queue.put(list(FakeTrainer.trained) + [f"trained={outcome.trained}"])


class BackendContractTests(LadderContractTests):
    """The contract every search backend keeps, run against a fake trainer (and once the
    real one). Subclass it in a test module (the name must start with ``Test``) and say
    which backend and what its section of the study file holds::

        class TestMyBackend(BackendContractTests):
            backend_name = "mine"
            study_section = {"mine": {"population": 4}}

    The backend must be registered (``register_backend``) when the tests run. The study
    files are ``losslab.testing.studies.BASE`` (a tiny phantom) plus ``study_section``.
    """

    backend_name: ClassVar[str] = ""
    study_section: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def backend(self) -> str:
        """The backend under test (a subclass may parametrise it over several)."""
        return self.backend_name

    def section(self, backend: str) -> dict[str, Any]:
        """What ``backend`` needs in its study file besides the common part."""
        return self.study_section

    @pytest.fixture(autouse=True)
    def _fresh_fake(self):
        FakeTrainer.reset()
        yield
        FakeTrainer.reset()  # nothing leaks into the tests after the contract (a failing fake)

    def _study(self, folder, backend: str, **changes):
        return write_study(folder, backend=backend, **{**self.section(backend), **changes})

    def _config(self, folder, backend: str, trials: int = 5, **changes):
        return load_study(self._study(folder, backend, budget={"trials": trials}, **changes))

    def test_a_study_completes_its_budget_and_a_rerun_trains_nothing(self, tmp_path, backend):
        config = self._config(tmp_path, backend)
        outcome = run_study(config, progress=False, trainer=FakeTrainer)
        assert len(outcome.records) == 5
        assert [r.number for r in outcome.records] == sorted(r.number for r in outcome.records)
        assert all(r.status == "ok" and 0 < r.value < 1 and r.candidate for r in outcome.records)
        assert len(FakeTrainer.trained) == len(set(FakeTrainer.trained)) == outcome.trained
        assert outcome.trained == len(
            {r.eval_key for r in outcome.records} | {outcome.baselines[0].key}
        )
        _agree(config, outcome)
        again = run_study(config, progress=False, trainer=FakeTrainer)
        assert again.trained == 0
        assert [(r.number, r.eval_key) for r in again.records] == [
            (r.number, r.eval_key) for r in outcome.records
        ]

    def test_a_stopped_study_resumes_losing_and_repeating_nothing(self, tmp_path, backend):
        config = self._config(tmp_path, backend, trials=6)
        with pytest.raises(KeyboardInterrupt):  # during the 3rd evaluation (the baseline is 1st)
            run_study(config, progress=False, trainer=FakeTrainer, extra_hooks=StopAfter(3))
        stopped_key = FakeTrainer.trained[-1]
        done_before = len(_ledger(config).records())
        assert done_before == 1
        outcome = run_study(config, resume=True, progress=False, trainer=FakeTrainer)
        assert len(outcome.records) == 6
        assert _ledger(config).interrupted()  # the stopped entry: not counted, run again
        assert stopped_key.partition("/")[0] in {r.candidate.key for r in outcome.records}
        # Trained once each, except the one that was cut short (trained again, to the end).
        repeated = [k for k in set(FakeTrainer.trained) if FakeTrainer.trained.count(k) > 1]
        assert repeated == [stopped_key]
        # The stopped attempt's run is superseded by the run of its rerun: out of the default
        # view (deleted), tagged with the run that holds the result.
        assert not [r for r in _runs(config, "trial") if r.status == "KILLED"]
        tracker = Tracker(config.tracking_uri, experiment=config.experiment)
        (killed,) = tracker.find_runs(deleted=True)
        assert killed.status == "KILLED" and killed.tags["status"] == "interrupted"
        rerun = tracker.run(killed.tags["losslab.superseded_by"])
        assert rerun.tags["losslab.eval_key"] == killed.tags["losslab.eval_key"]
        assert rerun.status == "FINISHED"
        _agree(config, outcome)

    def test_a_candidate_that_goes_nan_fails_alone(self, tmp_path, backend):
        FakeTrainer.fail_every = 3
        config = self._config(tmp_path, backend, trials=6)
        outcome = run_study(config, progress=False, trainer=FakeTrainer)
        assert len(outcome.records) == 6
        failed = [r for r in outcome.records if r.status == "failed"]
        assert failed and all("non-finite loss" in r.reason for r in failed)
        assert all(r.status == "ok" for r in outcome.records if r not in failed)
        runs = {r.run_id: r for r in _runs(config, "trial")}
        assert {runs[r.run_id].status for r in failed if not r.cached_from} == {"FAILED"}
        _agree(config, outcome)

    @pytest.mark.slow
    def test_two_workers_share_one_study(self, tmp_path, backend):
        path = self._study(tmp_path, backend, budget={"trials": 8})
        workers, reports = run_workers(path, get_backend(backend).__module__, _worker)
        assert [w.exitcode for w in workers] == [0, 0]
        trained = [key for report in reports for key in report[:-1]]
        assert len(trained) == len(set(trained)), "two workers trained the same evaluation"
        config = load_study(path)
        records = _ledger(config).records()
        assert len(records) == 8  # the budget exactly: entries are reserved before they train
        assert len(_runs(config, "study")) == 1
        assert {r.worker.rpartition(":")[2] for r in records} == {str(w.pid) for w in workers}
        outcome = run_study(config, progress=False, trainer=FakeTrainer)
        assert outcome.trained == 0
        _agree(config, outcome)

    @pytest.mark.slow
    def test_the_real_trainer_runs_every_backend(self, tmp_path, backend):
        config = self._config(
            tmp_path, backend, trials=2, fidelity={"epochs": 1, "steps_per_epoch": 2}
        )
        outcome = run_study(config, progress=False)
        assert len(outcome.records) == 2
        assert all(r.status == "ok" and 0 <= r.value <= 1 for r in outcome.records)
        _agree(config, outcome)
        assert run_study(config, progress=False).trained == 0
