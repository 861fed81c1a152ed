"""The ``Evaluator``: trains one candidate at the study's fidelity and seed, once.

Every backend evaluates through it. An evaluation is identified by its key: a hash of the
candidate's canonical JSON, the full train config after the fidelity, the seed and the backend's
overrides (``lr``...), and the data fingerprint. A cache maps keys to results, so the same
candidate is never trained twice in a study: :class:`MemoryCache` within a process, the study
store's cache (``ledger.py``) across processes, workers and resumes.

Each evaluation that trains is one MLflow run nested under the study's parent run, tagged with
its role (``trial``, ``baseline``), key and worker; a cached evaluation trains nothing and
records nothing new.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from losslab.candidate import Candidate
from losslab.data import SegmentationDataset
from losslab.data.cache import sha256_json
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.search.workers import worker_id
from losslab.tracking import MLflowHook, Tracker
from losslab.training import Hook, Result, TrainConfig, Trainer

__all__ = [
    "CachedEvaluation",
    "Evaluation",
    "EvaluationCache",
    "Evaluator",
    "MemoryCache",
]


@dataclass(frozen=True)
class CachedEvaluation:
    """What a cache holds for one key."""

    result: Result
    run_id: str | None = None
    origin: str = ""  # who evaluated it first, e.g. "trial 3" or "baseline dice"


class EvaluationCache(ABC):
    """Maps evaluation keys to results."""

    @abstractmethod
    def get(self, key: str) -> CachedEvaluation | None: ...

    @abstractmethod
    def put(self, key: str, entry: CachedEvaluation) -> None: ...

    def claim(self, key: str) -> bool:
        """Reserve ``key`` before training it; ``False`` when another live worker trains it now."""
        return True

    def wait(self, key: str) -> CachedEvaluation | None:
        """After a lost :meth:`claim`: the other worker's result, or ``None`` if it never came."""
        return None


class MemoryCache(EvaluationCache):
    """A dict: lives as long as the process."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedEvaluation] = {}

    def get(self, key: str) -> CachedEvaluation | None:
        return self._entries.get(key)

    def put(self, key: str, entry: CachedEvaluation) -> None:
        self._entries[key] = entry

    def __len__(self) -> int:
        return len(self._entries)


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
            :class:`Trainer`; tests give a fake one).
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
    ):
        self.make_trainer = trainer
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
        overrides = dict(overrides or {})
        key = self.key(candidate, seed=seed, overrides=overrides, variant=variant)
        hit = self.cache.get(key)
        if hit is None and not self.cache.claim(key):  # another worker trains it right now
            hit = self.cache.wait(key)
        if hit is not None:
            return Evaluation(
                key,
                candidate,
                hit.result,
                self.objective.of_result(hit.result),
                overrides,
                hit.run_id,
                cached=True,
                origin=hit.origin,
                curve=self._curve(hit.result),
            )
        config = self.config_for(seed, overrides)
        all_hooks = list(hooks)
        mlflow_hook = self._mlflow_hook(candidate, config, key, overrides, tags, on_run, variant)
        if mlflow_hook is not None:
            all_hooks.append(mlflow_hook)
        result = self.make_trainer(config, all_hooks).fit(candidate, self.dataset)
        self.trained += 1
        run_id = mlflow_hook.run_id if mlflow_hook is not None else None
        if result.status in ("ok", "failed", "pruned"):
            self.cache.put(key, CachedEvaluation(result, run_id, origin))
        value = self.objective.of_result(result)
        return Evaluation(
            key,
            candidate,
            result,
            value,
            overrides,
            run_id,
            origin=origin,
            curve=self._curve(result),
        )

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
    ) -> MLflowHook | None:
        if self.tracker is None:
            return None
        objective = self.objective

        def final(result: Result) -> dict[str, float]:
            values = {"objective": objective.of_result(result)}
            values["test_objective"] = objective.of_test(result)
            return {k: v for k, v in values.items() if not math.isnan(v)}

        hook = _LinkedMLflowHook(
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
        )
        hook.on_run = on_run
        return hook


class _LinkedMLflowHook(MLflowHook):
    """An MLflow hook that reports its run id as soon as the run exists."""

    on_run: Callable[[str], None] | None = None

    def _start(self) -> str:
        new = self.run_id is None
        run_id = super()._start()
        if new and self.on_run is not None:
            self.on_run(run_id)
        return run_id
