"""The in-memory evaluation cache and the evaluation key (nothing here trains)."""

from __future__ import annotations

import dataclasses

import pytest

from losslab.candidate import Candidate, ScheduleSpec
from losslab.search.evaluator import CachedEvaluation, Evaluator, MemoryCache
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.training import Result, TrainConfig


def cbs(zeta: float = 0.1, name: str = "dice+cbs") -> Candidate:
    return Candidate.from_loss("dice", name=name, class_schedule=ScheduleSpec.of("cbs", zeta=zeta))


def evaluator(dataset, train: TrainConfig | None = None, fidelity=None, **kwargs) -> Evaluator:
    return Evaluator(
        dataset, train or TrainConfig(), fidelity or Fidelity(epochs=1), Objective(), **kwargs
    )


# --- MemoryCache -------------------------------------------------------------------------------


def test_memory_cache_get_and_put():
    cache = MemoryCache()
    assert cache.get("k1") is None and len(cache) == 0
    entry = CachedEvaluation(Result("ok", ["bg", "a"]), run_id="r1", origin="trial 0")
    cache.put("k1", entry)
    assert cache.get("k1") is entry
    assert cache.get("k2") is None
    assert len(cache) == 1


def test_memory_cache_put_replaces():
    cache = MemoryCache()
    cache.put("k", CachedEvaluation(Result("pruned", ["bg"]), origin="trial 0"))
    cache.put("k", CachedEvaluation(Result("ok", ["bg"]), origin="trial 1"))
    assert cache.get("k").origin == "trial 1" and cache.get("k").result.ok
    assert len(cache) == 1


def test_memory_caches_are_separate():
    one, two = MemoryCache(), MemoryCache()
    one.put("k", CachedEvaluation(Result("ok", ["bg"])))
    assert two.get("k") is None


def test_evaluator_gets_its_own_cache_unless_given_one(tiny_phantom):
    assert isinstance(evaluator(tiny_phantom).cache, MemoryCache)
    assert evaluator(tiny_phantom).cache is not evaluator(tiny_phantom).cache
    shared = MemoryCache()
    assert evaluator(tiny_phantom, cache=shared).cache is shared


# --- Evaluator.key -----------------------------------------------------------------------------


def test_key_is_stable(tiny_phantom):
    ev = evaluator(tiny_phantom)
    key = ev.key(cbs(), seed=1, overrides={"lr": 0.01})
    assert key == ev.key(cbs(), seed=1, overrides={"lr": 0.01})
    assert key == evaluator(tiny_phantom).key(cbs(), seed=1, overrides={"lr": 0.01})
    assert isinstance(key, str) and len(key) == 20
    assert ev.trained == 0  # computing a key trains nothing


def test_key_changes_with_the_seed(tiny_phantom):
    ev = evaluator(tiny_phantom)
    assert ev.key(cbs(), seed=0) != ev.key(cbs(), seed=1)


def test_default_seed_is_the_evaluators(tiny_phantom):
    ev = evaluator(tiny_phantom, seed=3)
    assert ev.key(cbs()) == ev.key(cbs(), seed=3)
    assert ev.key(cbs()) != evaluator(tiny_phantom, seed=4).key(cbs())


def test_key_changes_with_an_override(tiny_phantom):
    ev = evaluator(tiny_phantom)
    plain = ev.key(cbs())
    assert ev.key(cbs(), overrides={"lr": 0.01}) != plain
    assert ev.key(cbs(), overrides={"lr": 0.01}) != ev.key(cbs(), overrides={"lr": 0.02})
    # Overriding with the value already in force is the same evaluation.
    assert ev.key(cbs(), overrides={"lr": ev.train.lr}) == plain


def test_bad_override_is_an_error(tiny_phantom):
    with pytest.raises(ValueError, match="bad train override"):
        evaluator(tiny_phantom).key(cbs(), overrides={"learning_rate": 0.01})


def test_key_changes_with_the_fidelity(tiny_phantom):
    one = evaluator(tiny_phantom, fidelity=Fidelity(epochs=1)).key(cbs())
    two = evaluator(tiny_phantom, fidelity=Fidelity(epochs=2)).key(cbs())
    steps = evaluator(tiny_phantom, fidelity=Fidelity(epochs=1, steps_per_epoch=2)).key(cbs())
    cut = evaluator(tiny_phantom, fidelity=Fidelity(epochs=1, train_cases=2)).key(cbs())
    assert len({one, two, steps, cut}) == 4


def test_fidelity_that_changes_nothing_keeps_the_key(tiny_phantom):
    train = TrainConfig(epochs=1)
    base = evaluator(tiny_phantom, train, Fidelity(epochs=1)).key(cbs())
    # All four training cases is no cut; the train config already has epochs=1.
    assert evaluator(tiny_phantom, train, Fidelity(train_cases=4)).key(cbs()) == base
    assert evaluator(tiny_phantom, train, Fidelity()).key(cbs()) == base


def test_key_changes_with_the_train_config(tiny_phantom):
    base = evaluator(tiny_phantom).key(cbs())
    other = evaluator(tiny_phantom, TrainConfig(batch_size=1)).key(cbs())
    assert other != base


def test_key_changes_with_the_class_schedule_parameters(tiny_phantom):
    ev = evaluator(tiny_phantom)
    assert ev.key(cbs(zeta=0.1)) != ev.key(cbs(zeta=0.2))
    assert ev.key(cbs()) != ev.key(Candidate.from_loss("dice"))


def test_key_changes_with_the_loss(tiny_phantom):
    ev = evaluator(tiny_phantom)
    assert ev.key(Candidate.from_loss("dice")) != ev.key(Candidate.from_loss("dice_ce"))
    focal = Candidate.from_loss("focal", gamma=2.0)
    assert ev.key(focal) != ev.key(Candidate.from_loss("focal", gamma=3.0))


def test_key_ignores_the_candidate_name(tiny_phantom):
    ev = evaluator(tiny_phantom)
    assert ev.key(cbs(name="first")) == ev.key(cbs(name="second"))


def test_key_ignores_the_device(tiny_phantom):
    cpu = evaluator(tiny_phantom, TrainConfig(device="cpu")).key(cbs())
    auto = evaluator(tiny_phantom, TrainConfig(device="auto")).key(cbs())
    cuda = evaluator(tiny_phantom, TrainConfig(device="cuda:1")).key(cbs())
    assert cpu == auto == cuda
    assert evaluator(tiny_phantom).key(cbs(), overrides={"device": "cuda"}) == cpu


def test_key_changes_with_the_data(tiny_phantom):
    other = dataclasses.replace(tiny_phantom, fingerprint="0" * 64)
    assert evaluator(tiny_phantom).key(cbs()) != evaluator(other).key(cbs())
