"""What every backend must do on a fidelity ladder (``losslab.search.ladder``), with the fake
trainer: the promotions follow the documented rule exactly (replayed entry by entry), the
baselines run at every rung, a stop during a promotion and a resume lose and repeat nothing,
racing stops feeding the racers a scripted test split makes significantly worse, the study ends
with its verdict, and two workers on one ladder train no rung evaluation twice.
:class:`~losslab.testing.backend_contract.BackendContractTests` includes these cases.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from losslab.search import get_backend, load_study, run_study
from losslab.search.ladder import LadderJob, ladder_jobs
from losslab.testing.fakes import FakeTrainer, StopAfter
from losslab.testing.studies import run_workers, write_study
from losslab.tracking.tracker import Tracker

__all__ = ["LADDER", "LadderContractTests", "replay_the_rule"]

LADDER: dict[str, Any] = {
    "rungs": [
        {"epochs": 1, "steps_per_epoch": 2},
        {"epochs": 2, "steps_per_epoch": 2},
        {"epochs": 3, "steps_per_epoch": 2, "seeds": 2},
    ],
    "keep": 0.5,
}


def replay_the_rule(ladder, records) -> None:
    """Each entry is what the rule asked for when it was reserved (one worker, one slot at a
    time): the ladder's first job then, or a backend's proposal when the ladder had none."""
    ordered = sorted(records, key=lambda r: r.number)
    for index, record in enumerate(ordered):
        jobs = ladder_jobs(ladder, ordered[:index])
        if record.root is None:
            assert jobs == [], f"entry {record.number} is new while {jobs[0]} was due"
        else:
            asked = LadderJob(record.rung, record.root, record.seed)
            assert jobs and jobs[0] == asked, f"entry {record.number}: {asked}, rule: {jobs[:1]}"


def _positions(records) -> list[tuple[int, int, int]]:
    return [(r.rung, r.number if r.root is None else r.root, r.seed) for r in records]


def _ladder_worker(path: str, queue, module: str) -> None:
    import importlib

    importlib.import_module(module)  # a fresh process: the backend registers on import
    FakeTrainer.epoch_seconds = 0.2
    outcome = run_study(load_study(path), progress=False, trainer=FakeTrainer)
    queue.put(list(FakeTrainer.evaluated) + [f"trained={outcome.trained}"])


class LadderContractTests:
    """The ladder's part of the backend contract (module docstring)."""

    backend_name: ClassVar[str] = ""
    study_section: ClassVar[dict[str, Any]] = {}

    def _ladder_study(self, folder, backend: str, trials: int = 12, **changes):
        folder.mkdir(parents=True, exist_ok=True)
        section = self.section(backend)  # type: ignore[attr-defined]
        workers = {**section.get("workers", {}), "batch": 1}
        return write_study(
            folder,
            backend=backend,
            **{
                **section,
                "fidelity": LADDER,
                "budget": {"trials": trials},
                "workers": workers,
                **changes,
            },
        )

    def test_a_ladder_promotes_by_its_rule_and_runs_the_baselines_at_every_rung(
        self, tmp_path, backend
    ):
        FakeTrainer.test_cases = 4
        config = load_study(self._ladder_study(tmp_path, backend))
        outcome = run_study(config, progress=False, trainer=FakeTrainer)
        records = outcome.records
        assert len(records) == 12  # the budget counts evaluations across rungs
        replay_the_rule(config.ladder, records)
        assert {r.rung for r in records} == {0, 1, 2}  # promoted up to the top
        # Four test cases of one seed cannot separate anyone (p >= 0.125): racers get seed 1.
        assert any(r.rung == 2 and r.seed == 1 for r in records)
        assert len(set(_positions(records))) == len(records)
        assert len(FakeTrainer.evaluated) == len(set(FakeTrainer.evaluated))
        tracker = Tracker(config.tracking_uri, experiment=config.experiment)
        baselines = [r for r in tracker.find_runs() if r.tags.get("losslab.role") == "baseline"]
        places = sorted((r.tags["losslab.rung"], r.tags["losslab.seed_index"]) for r in baselines)
        assert places == [("0", "0"), ("1", "0"), ("2", "0"), ("2", "1")]
        assert outcome.verdict is not None and outcome.verdict.seeds >= 1
        best = [_positions([r])[0][1] for r in outcome.best()]
        assert len(best) == len(set(best))  # one entry per proposal: its highest rung
        assert outcome.best(1)[0].number == outcome.winner.number
        (parent,) = [r for r in tracker.find_runs() if r.tags.get("losslab.role") == "study"]
        assert parent.tags["losslab.verdict"] == outcome.verdict.sentence
        again = run_study(config, progress=False, trainer=FakeTrainer)
        assert again.trained == 0 and _positions(again.records) == _positions(records)

    def test_a_stop_during_a_promotion_loses_and_repeats_nothing(self, tmp_path, backend):
        plain = load_study(self._ladder_study(tmp_path / "whole", backend))
        whole = run_study(plain, progress=False, trainer=FakeTrainer)
        (first,) = [r for r in sorted(whole.records, key=lambda r: r.number) if r.root][:1]
        baselines = 4  # three rungs, two seeds at the top: trained before any entry
        FakeTrainer.reset()
        config = load_study(self._ladder_study(tmp_path / "stopped", backend))
        with pytest.raises(KeyboardInterrupt):  # during the first promotion's evaluation
            run_study(
                config,
                progress=False,
                trainer=FakeTrainer,
                extra_hooks=StopAfter(baselines + first.number + 1),
            )
        stopped = FakeTrainer.evaluated[-1]
        outcome = run_study(config, resume=True, progress=False, trainer=FakeTrainer)
        assert len(outcome.records) == 12
        positions = _positions(outcome.records)
        assert len(set(positions)) == len(positions)  # no ladder position evaluated twice
        assert (first.rung, first.root, first.seed) in positions  # the stopped one ran again
        done = FakeTrainer.evaluated
        assert [k for k in set(done) if done.count(k) > 1] == [stopped]

    def test_racing_stops_feeding_a_racer_that_tests_significantly_worse(self, tmp_path, backend):
        FakeTrainer.test_cases = 8
        # Every searched candidate validates as it always does but tests 0.3 below: at the
        # top rung the baseline is the best contender and each racer is dropped after seed 0.
        FakeTrainer.test_offset = lambda candidate: 0.0 if candidate.name == "dice" else -0.3
        path = self._ladder_study(tmp_path, backend, baselines=[{"name": "dice", "loss": "dice"}])
        outcome = run_study(load_study(path), progress=False, trainer=FakeTrainer)
        top = [r for r in outcome.records if r.rung == 2]
        if not [r for r in top if r.candidate.name != "dice"]:
            pytest.skip(f"{backend}: no searched candidate reached the top rung")
        assert all(r.seed == 0 for r in top if r.candidate.name != "dice")
        assert outcome.verdict.outcome == "worse"
        assert outcome.verdict.sentence.startswith("dice beats every candidate")

    @pytest.mark.slow
    def test_two_workers_on_one_ladder_train_no_rung_evaluation_twice(self, tmp_path, backend):
        path = self._ladder_study(tmp_path, backend, trials=10)
        workers, reports = run_workers(path, get_backend(backend).__module__, _ladder_worker)
        assert [w.exitcode for w in workers] == [0, 0]
        trained = [key for report in reports for key in report[:-1]]
        assert len(trained) == len(set(trained)), "two workers trained the same evaluation"
        outcome = run_study(load_study(path), progress=False, trainer=FakeTrainer)
        assert outcome.trained == 0
        assert len(outcome.records) == 10  # the budget exactly, across rungs
        positions = _positions(outcome.records)
        assert len(set(positions)) == len(positions)
