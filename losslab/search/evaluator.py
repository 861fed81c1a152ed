"""The ``Evaluator``: trains one candidate at the study's fidelity and seed, once.

Every backend evaluates through it. An evaluation is identified by its key: a hash of the
candidate's canonical JSON, the full train config after the fidelity, the seed and the backend's
overrides (``lr``...), and the data fingerprint. A cache maps keys to results, so the same
candidate is never trained twice in a study: :class:`MemoryCache` within a process, the study
store's cache (``store/``) across processes, workers and resumes.

Each evaluation that trains is one MLflow run nested under the study's parent run, tagged with
its role (``trial``, ``baseline``), key and worker; a cached evaluation trains nothing and
records nothing new, except that it completes a run that a kill left without its result and
supersedes the runs of interrupted attempts (``evaluation_runs.py``).

:meth:`Evaluator.evaluate_batch` evaluates several items with the same per-item semantics, and
trains together (``PopulationTrainer``: one batched network on one device) the items that miss
the cache, share the train config apart from the seed and whose hooks all work on a population
member (``population_safe``); the others train one at a time.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from losslab.candidate import Candidate
from losslab.data import SegmentationDataset
from losslab.data.cache import sha256_json
from losslab.search.evaluation_cache import CachedEvaluation, EvaluationCache, MemoryCache
from losslab.search.evaluation_runs import CacheHook, LinkedMLflowHook, finish_cached
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.search.workers import worker_id
from losslab.tracking.format import run_name
from losslab.tracking.hook import MLflowHook
from losslab.tracking.tracker import Tracker
from losslab.training import Hook, PopulationTrainer, Result, TrainConfig, Trainer
from losslab.training.population import DEFAULT_MAX_SIZE, population_safe

__all__ = [
    "BatchItem",
    "CachedEvaluation",
    "Evaluation",
    "EvaluationCache",
    "Evaluator",
    "MemoryCache",
]


@dataclass
class Evaluation:
    """One evaluated candidate: its result, objective value and MLflow run."""

    key: str
    candidate: Candidate
    result: Result
    value: float
    overrides: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    cached: bool = False
    origin: str = ""
    curve: dict[int, float] = field(default_factory=dict)  # epoch -> objective on validation


@dataclass(frozen=True)
class BatchItem:
    """One evaluation of :meth:`Evaluator.evaluate_batch`: the arguments of
    :meth:`Evaluator.evaluate`."""

    candidate: Candidate
    seed: int | None = None
    overrides: Mapping[str, Any] | None = None
    variant: Mapping[str, Any] | None = None
    hooks: Sequence[Hook] = ()
    tags: Mapping[str, str] | None = None
    origin: str = ""
    on_run: Callable[[str], None] | None = None


class Evaluator:
    """Trains candidates on one dataset at one fidelity, caching by key and recording to MLflow.

    Args:
        dataset: the study's data (the fidelity may cut its training split).
        train: the study's train config (the fidelity and per-evaluation overrides apply on top).
        fidelity: how much training each evaluation gets.
        objective: the study's objective, logged per epoch and at the end as ``objective``.
        seed: default seed of every evaluation.
        tracker, parent_run_id: where runs go (``None``: no MLflow).
        cache: results by key (default: in memory).
        tags: added to every run (``backend``, ``study``).
        trainer: builds the trainer of one evaluation from its config and hooks (default
            :class:`Trainer`; tests give a fake one, and then every evaluation trains alone).
        max_population: the most evaluations of a batch trained together (1: one at a time).
    """

    def __init__(
        self,
        dataset: SegmentationDataset,
        train: TrainConfig,
        fidelity: Fidelity,
        objective: Objective,
        *,
        seed: int = 0,
        tracker: Tracker | None = None,
        parent_run_id: str | None = None,
        cache: EvaluationCache | None = None,
        tags: Mapping[str, str] | None = None,
        trainer: Callable[[TrainConfig, list[Hook]], Any] = Trainer,
        max_population: int = DEFAULT_MAX_SIZE,
    ):
        if max_population < 1:
            raise ValueError(f"max_population must be >= 1, got {max_population}")
        self.make_trainer, self.max_population = trainer, max_population
        self.dataset = fidelity.apply_data(dataset)
        self.train = fidelity.apply(train)
        self.fidelity = fidelity
        self.objective = objective
        self.seed = seed
        self.tracker = tracker
        self.parent_run_id = parent_run_id
        self.cache = cache if cache is not None else MemoryCache()
        self.tags = dict(tags or {})
        self.trained = 0  # evaluations that trained in this process (cache misses)

    def config_for(self, seed: int | None = None, overrides: Mapping[str, Any] | None = None):
        """The train config of one evaluation; an override that is not a field is an error."""
        changes = dict(overrides or {})
        changes["seed"] = self.seed if seed is None else seed
        try:
            return dataclasses.replace(self.train, **changes)
        except TypeError as exc:
            raise ValueError(f"bad train override in {sorted(changes)}: {exc}") from None

    def key(
        self,
        candidate: Candidate,
        *,
        seed: int | None = None,
        overrides: Mapping[str, Any] | None = None,
        variant: Mapping[str, Any] | None = None,
    ) -> str:
        """The evaluation key: the candidate, the train config, the data and (when given) the
        variant of training the hooks make (a greedy controller's plan)."""
        payload = {
            "candidate": candidate.canonical_json(),
            "train": self.config_for(seed, overrides).identity(),
            "data": self.dataset.fingerprint,
        }
        if variant:  # the keys of plain evaluations stay as they were
            payload["variant"] = dict(variant)
        return sha256_json(payload)[:20]

    def evaluate(
        self,
        candidate: Candidate,
        *,
        seed: int | None = None,
        overrides: Mapping[str, Any] | None = None,
        variant: Mapping[str, Any] | None = None,
        hooks: Sequence[Hook] = (),
        tags: Mapping[str, str] | None = None,
        origin: str = "",
        on_run: Callable[[str], None] | None = None,
    ) -> Evaluation:
        """Train ``candidate`` (or return the cached result of the same key).

        ``on_run`` is called with the MLflow run id as soon as the run exists, so a backend can
        link it to its trial before training starts (and find it again after a crash).
        """
        item = BatchItem(candidate, seed, overrides, variant, hooks, tags, origin, on_run)
        return self._evaluate_item(item)

    def _evaluate_item(self, item: BatchItem) -> Evaluation:
        key = self._key(item)
        hit = self.cache.get(key)
        if hit is None and not self.cache.claim(key):  # another worker trains it right now
            hit = self.cache.wait(key)
        if hit is not None:
            return self._cached(item, key, hit)
        return self._train_one(item, key)

    def evaluate_batch(self, items: Sequence[BatchItem]) -> list[Evaluation]:
        """Evaluate ``items``, one :class:`Evaluation` each, in order, as :meth:`evaluate` would.

        Same keys, cache hits, claims, MLflow runs (one per evaluation that trains, with the same
        parameters, metrics and tags, ``on_run`` called as its run starts) and results; each
        result is cached as soon as its evaluation ends. The items that miss the cache train
        together when they share the train config apart from the seed and all their hooks are
        ``population_safe`` (up to ``max_population`` at once), the others one at a time. An
        item whose key another worker holds is waited for after the rest has trained; an item
        whose key comes earlier in the batch gets that item's result, as a cache hit.
        """
        out: list[Evaluation | None] = [None] * len(items)
        keys = [self._key(item) for item in items]
        first: dict[str, int] = {}
        todo, waiting, repeats = [], [], []
        for i, (item, key) in enumerate(zip(items, keys)):
            if key in first:
                repeats.append(i)
            elif (hit := self.cache.get(key)) is not None:
                out[i] = self._cached(item, key, hit)
            elif self.cache.claim(key):
                todo.append(i)
            else:  # another worker trains it right now
                waiting.append(i)
            first.setdefault(key, i)
        for group in self._groups(items, todo):
            if len(group) == 1:
                out[group[0]] = self._train_one(items[group[0]], keys[group[0]])
            else:
                trained = self._train_together([items[i] for i in group], [keys[i] for i in group])
                for i, evaluation in zip(group, trained):
                    out[i] = evaluation
        for i in waiting:
            hit = self.cache.wait(keys[i])
            out[i] = (
                self._cached(items[i], keys[i], hit) if hit else self._train_one(items[i], keys[i])
            )
        for i in repeats:
            out[i] = self._evaluate_item(items[i])
        return [e for e in out if e is not None]

    def _key(self, item: BatchItem) -> str:
        return self.key(
            item.candidate, seed=item.seed, overrides=item.overrides, variant=item.variant
        )

    def _cached(self, item: BatchItem, key: str, hit: CachedEvaluation) -> Evaluation:
        """A cache hit; its MLflow run is finished if a kill left it without its result
        (``evaluation_runs.py``)."""
        if self.tracker is not None and hit.run_id is not None:
            config = self.config_for(item.seed, item.overrides)
            _, hook = self._hooks(dataclasses.replace(item, on_run=None, hooks=()), key, config)
            finish_cached(self, hook, key, hit)
        return self._evaluation(item, key, hit.result, hit.run_id, cached_from=hit.origin)

    def _evaluation(self, item, key, result, run_id, cached_from: str | None = None):
        return Evaluation(
            key,
            item.candidate,
            result,
            self.objective.of_result(result),
            dict(item.overrides or {}),
            run_id,
            cached=cached_from is not None,
            origin=item.origin if cached_from is None else cached_from,
            curve=self._curve(result),
        )

    def _hooks(self, item: BatchItem, key: str, config: TrainConfig):
        """The item's hooks and, last, its MLflow hook (``None`` without a tracker)."""
        overrides = dict(item.overrides or {})
        mlflow_hook = self._mlflow_hook(
            item.candidate,
            config,
            key,
            overrides,
            item.tags,
            item.on_run,
            item.variant,
            item.origin,
        )
        return [*item.hooks, *([mlflow_hook] if mlflow_hook else [])], mlflow_hook

    def _train_one(self, item: BatchItem, key: str) -> Evaluation:
        config = self.config_for(item.seed, item.overrides)
        hooks, mlflow_hook = self._hooks(item, key, config)
        cache = CacheHook(self, key, mlflow_hook, item.origin)
        # Before MLflow's hook: see CacheHook.
        hooks.insert(len(hooks) - (mlflow_hook is not None), cache)
        result = self.make_trainer(config, hooks).fit(item.candidate, self.dataset)
        if not cache.done:  # a trainer that calls no hooks (a test's)
            cache.on_train_end(None, result)
        return self._evaluation(item, key, result, cache.run_id)

    def _groups(self, items: Sequence[BatchItem], todo: list[int]) -> list[list[int]]:
        """``todo`` in groups that can train together (one-item groups train alone)."""
        if self.max_population == 1 or self.make_trainer is not Trainer:
            return [[i] for i in todo]
        groups: dict[str, list[int]] = {}
        for i in todo:
            item = items[i]
            if not population_safe(item.hooks):
                groups[f"alone {i}"] = [i]
                continue
            config = self.config_for(item.seed, item.overrides).to_dict()
            del config["seed"]
            groups.setdefault(json.dumps(config, sort_keys=True, default=str), []).append(i)
        return list(groups.values())

    def _train_together(self, items: list[BatchItem], keys: list[str]) -> list[Evaluation]:
        configs = [self.config_for(item.seed, item.overrides) for item in items]
        hooks, caches = [], []
        for item, key, config in zip(items, keys, configs):
            item_hooks, mlflow_hook = self._hooks(item, key, config)
            cache = CacheHook(self, key, mlflow_hook, item.origin)
            item_hooks.insert(len(item_hooks) - (mlflow_hook is not None), cache)
            hooks.append(item_hooks)
            caches.append(cache)
        trainer = PopulationTrainer(configs[0], max_size=self.max_population)
        results = trainer.fit_many(
            [item.candidate for item in items],
            self.dataset,
            hooks=hooks,
            seeds=[config.seed for config in configs],
        )
        runs = [cache.run_id for cache in caches]
        return [
            self._evaluation(item, key, result, run_id)
            for item, key, result, run_id in zip(items, keys, results, runs)
        ]

    def _curve(self, result: Result) -> dict[int, float]:
        values = {r.epoch: self.objective.of_epoch(r) for r in result.history}
        return {epoch: v for epoch, v in values.items() if not math.isnan(v)}

    def _mlflow_hook(
        self,
        candidate: Candidate,
        config: TrainConfig,
        key: str,
        overrides: Mapping[str, Any],
        tags: Mapping[str, str] | None,
        on_run: Callable[[str], None] | None,
        variant: Mapping[str, Any] | None = None,
        origin: str = "",
    ) -> MLflowHook | None:
        """The run of one evaluation, named by its origin and candidate (``trial 4`` ->
        ``trial-004 tversky(alpha=0.283)``, ``baseline X`` -> ``baseline X``: ``run_name``)."""
        if self.tracker is None:
            return None
        objective = self.objective

        def final(result: Result) -> dict[str, float]:
            values = {"test_objective": objective.of_test(result)}
            last = result.history[-1] if result.history else None
            if last is None or math.isnan(objective.of_epoch(last)):  # else logged with it
                values["objective"] = objective.of_result(result)
            return {k: v for k, v in values.items() if not math.isnan(v)}

        hook = LinkedMLflowHook(
            self.tracker,
            candidate,
            config,
            data_fingerprint=self.dataset.fingerprint,
            parent_run_id=self.parent_run_id,
            tags={
                **self.tags,
                **dict(tags or {}),
                "losslab.eval_key": key,
                "losslab.worker": worker_id(),
            },
            extra_params={
                **{f"fidelity.{k}": v for k, v in self.fidelity.to_dict().items()},
                **{f"override.{k}": v for k, v in overrides.items()},
                **{f"variant.{k}": v for k, v in (variant or {}).items()},
                "objective": self.objective.describe(),
            },
            epoch_metrics=lambda record: {"objective": objective.of_epoch(record)},
            final_metrics=final,
            run_name=run_name(origin, candidate, overrides),
        )
        hook.on_run = on_run
        return hook
