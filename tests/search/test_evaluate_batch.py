"""``Evaluator.evaluate_batch``: the same evaluations as ``evaluate``, trained together.

Trained with SGD on a tiny phantom, where the population reproduces each run alone to rounding
(``tests/training/test_population.py``: weights <= 2.2e-8 apart, losses and metrics identical),
so results are compared with ``pytest.approx`` at a relative 1e-6.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict

import pytest

from losslab.candidate import Candidate, ScheduleSpec
from losslab.search.evaluator import BatchItem, Evaluator, MemoryCache
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.training import Hook, TrainConfig, Trainer
from losslab.training.population import PopulationTrainer

TRAIN = TrainConfig(
    epochs=2,
    steps_per_epoch=2,
    patch_size=(16, 16, 16),
    optimizer="sgd",
    lr=3e-3,
    device="cpu",
    hd95=False,
)
VOLATILE_METRICS = {"wall_time"}  # seconds differ from run to run


class RecordingTracker:
    """What ``MLflowHook`` sends to MLflow, per run, in memory."""

    def __init__(self) -> None:
        self.runs: dict[str, dict] = {}

    def start_run(self, name, *, parent_run_id=None, tags=None) -> str:
        run_id = f"run{len(self.runs)}"
        self.runs[run_id] = {
            "name": name,
            "parent": parent_run_id,
            "tags": dict(tags or {}),
            "params": {},
            "metrics": defaultdict(dict),
            "texts": {},
            "status": "RUNNING",
        }
        return run_id

    def log_params(self, run_id, params) -> None:
        self.runs[run_id]["params"].update({k: str(v) for k, v in params.items()})

    def log_metrics(self, run_id, metrics, step=0) -> None:
        for name, value in metrics.items():
            if value is not None and math.isfinite(value):
                self.runs[run_id]["metrics"][name][step] = float(value)

    def set_tags(self, run_id, tags) -> None:
        self.runs[run_id]["tags"].update({k: str(v) for k, v in tags.items()})

    def log_text(self, run_id, text, path) -> None:
        self.runs[run_id]["texts"][path] = text

    def log_table(self, run_id, data, path) -> None:
        self.runs[run_id]["texts"][path] = json.dumps(data, sort_keys=True)

    def log_batch(self, run_id, points=(), tags=None) -> None:
        for point in points:
            self.log_metrics(run_id, point.values, point.step)
        self.set_tags(run_id, tags or {})

    def log_files(self, run_id, files, tables=None) -> dict:
        self.runs[run_id]["texts"].update({k: len(v) for k, v in files.items()})
        for path, data in (tables or {}).items():
            self.log_table(run_id, data, path)
        return {}

    def log_artifact(self, run_id, local_path, folder="") -> None:
        pass

    def end_run(self, run_id, status="FINISHED") -> None:
        self.runs[run_id]["status"] = status

    def runs_tagged(self, tags, *, parent_run_id=None, status=None) -> list:
        return []  # no interrupted attempt to supersede: nothing is killed here

    def run(self, run_id):
        return None


def items(on_run=None) -> list[BatchItem]:
    return [
        BatchItem(Candidate.from_loss("dice"), origin="trial 0", on_run=on_run),
        BatchItem(Candidate.from_loss("dice_ce"), seed=1, origin="trial 1", on_run=on_run),
        BatchItem(
            Candidate.from_loss("tversky", class_schedule=ScheduleSpec.of("tcf", threshold=0.005)),
            overrides={"lr": 3e-3},  # the study's value: the same config, another key part
            tags={"losslab.role": "baseline"},
            origin="baseline tversky",
            on_run=on_run,
        ),
    ]


def evaluator(dataset, **kwargs) -> Evaluator:
    return Evaluator(
        dataset,
        TRAIN,
        Fidelity(),
        Objective(),
        tracker=RecordingTracker(),
        parent_run_id="parent",
        tags={"backend": "test"},
        **kwargs,
    )


def one_by_one(evaluator: Evaluator, batch: list[BatchItem]):
    return [
        evaluator.evaluate(
            item.candidate,
            seed=item.seed,
            overrides=item.overrides,
            variant=item.variant,
            hooks=item.hooks,
            tags=item.tags,
            origin=item.origin,
            on_run=item.on_run,
        )
        for item in batch
    ]


def assert_same_evaluation(mine, theirs) -> None:
    assert (mine.key, mine.cached, mine.origin, mine.overrides) == (
        theirs.key,
        theirs.cached,
        theirs.origin,
        theirs.overrides,
    )
    assert mine.candidate == theirs.candidate
    assert mine.result.status == theirs.result.status and mine.result.steps == theirs.result.steps
    assert mine.value == pytest.approx(theirs.value, rel=1e-6)
    assert mine.curve == pytest.approx(theirs.curve, rel=1e-6)
    for a, b in zip(mine.result.history, theirs.result.history):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-6)
        assert a.class_weights == b.class_weights
    assert mine.result.test_metrics.keys() == theirs.result.test_metrics.keys()
    for metric, values in theirs.result.test_metrics.items():
        assert mine.result.test_metrics[metric] == pytest.approx(values, rel=1e-6, nan_ok=True)


def assert_same_run(mine: dict, theirs: dict) -> None:
    """Same name, parent, parameters, tags, metrics (names, steps and values) and texts."""
    assert (mine["name"], mine["parent"], mine["status"]) == (
        theirs["name"],
        theirs["parent"],
        theirs["status"],
    )
    assert mine["params"] == theirs["params"]
    assert mine["tags"] == theirs["tags"]
    assert mine["metrics"].keys() == theirs["metrics"].keys()
    for name, steps in theirs["metrics"].items():
        assert mine["metrics"][name].keys() == steps.keys(), name
        if name not in VOLATILE_METRICS:
            assert mine["metrics"][name] == pytest.approx(steps, rel=1e-6, abs=1e-9), name
    assert mine["texts"].keys() == theirs["texts"].keys()
    assert mine["texts"]["candidate.json"] == theirs["texts"]["candidate.json"]


def test_a_batch_gives_what_one_evaluation_at_a_time_gives(tiny_phantom, monkeypatch):
    sizes = []
    real_fit_many = PopulationTrainer.fit_many

    def spy(self, *args, **kwargs):
        results = real_fit_many(self, *args, **kwargs)
        sizes.extend(self.sizes)
        return results

    monkeypatch.setattr(PopulationTrainer, "fit_many", spy)
    seen_one, seen_batch = [], []
    alone = evaluator(tiny_phantom)
    expected = one_by_one(alone, items(seen_one.append))
    together = evaluator(tiny_phantom)
    got = together.evaluate_batch(items(seen_batch.append))
    assert sizes == [3]  # trained as one population
    assert together.trained == alone.trained == 3
    assert seen_batch == [e.run_id for e in got] and len(set(seen_batch)) == 3
    for mine, theirs in zip(got, expected):
        assert mine.result.ok, mine.result.reason
        assert_same_evaluation(mine, theirs)
        assert together.cache.get(mine.key).run_id == mine.run_id
        assert_same_run(together.tracker.runs[mine.run_id], alone.tracker.runs[theirs.run_id])


def test_a_cached_item_is_not_trained_again(tiny_phantom):
    cache = MemoryCache()
    ev = evaluator(tiny_phantom, cache=cache)
    batch = items()
    first = ev.evaluate(batch[1].candidate, seed=1, origin="trial 1")
    assert ev.trained == 1
    got = ev.evaluate_batch(batch)
    assert ev.trained == 3 and len(ev.tracker.runs) == 3  # the other two only
    assert got[1].cached and got[1].run_id == first.run_id and got[1].origin == "trial 1"
    assert got[1].result is first.result
    assert not got[0].cached and not got[2].cached
    again = ev.evaluate_batch(batch)
    assert all(e.cached for e in again) and ev.trained == 3
    assert [e.run_id for e in again] == [e.run_id for e in got]


def test_items_train_alone_when_a_hook_needs_a_real_trainer_or_the_size_is_one(tiny_phantom):
    class Alone(Hook):  # not population_safe: sees the plain trainer's state
        def __init__(self) -> None:
            self.trainers = []

        def on_train_start(self, state) -> None:
            self.trainers.append(state.trainer)

    class Member(Alone):
        population_safe = True

    hooks = [Member(), Alone(), Member()]
    batch = [
        BatchItem(item.candidate, item.seed, item.overrides, hooks=[h])
        for item, h in zip(items(), hooks)
    ]
    evaluator(tiny_phantom).evaluate_batch(batch)
    assert isinstance(hooks[1].trainers[0], Trainer)
    assert hooks[0].trainers == [None] and hooks[2].trainers == [None]  # population members
    single = [Member(), Member()]
    batch = [BatchItem(item.candidate, hooks=[h]) for item, h in zip(items(), single)]
    evaluator(tiny_phantom, max_population=1).evaluate_batch(batch)
    assert all(isinstance(h.trainers[0], Trainer) for h in single)


def test_a_repeated_key_in_a_batch_trains_once(tiny_phantom):
    ev = evaluator(tiny_phantom)
    dice = BatchItem(Candidate.from_loss("dice"), origin="trial 0")
    got = ev.evaluate_batch([dice, BatchItem(Candidate.from_loss("dice"), origin="trial 1")])
    assert ev.trained == 1
    assert got[1].cached and got[1].run_id == got[0].run_id and got[1].origin == "trial 0"


def test_max_population_must_be_positive(tiny_phantom):
    with pytest.raises(ValueError, match="max_population"):
        evaluator(tiny_phantom, max_population=0)
