"""The Optuna backend: TPE (or random) over the study's space, pruning on per-epoch objectives.

The study store keeps its ledger in an Optuna study, so this backend draws directly in each
slot's trial: the conditional space suggests only the chosen options' parameters, TPE learns
from every finished entry of every worker (its history is the ledger itself, so a resumed study
continues where it stopped), and a pruner (median, Hyperband, successive halving) reads the
per-epoch objective that the store records and stops an evaluation with ``StopTraining``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import optuna

from losslab.search.backend import BackendContext, Proposal, SearchBackend, Slot
from losslab.search.objective import Objective
from losslab.search.optuna.settings import check_settings, make_pruner, make_sampler
from losslab.search.space import SearchSpace, SpaceError
from losslab.training import EpochRecord, Hook, StopTraining

__all__ = ["OptunaBackend"]


class _PruneHook(Hook):
    """Asks the pruner after every epoch (the store has reported the epoch's objective)."""

    population_safe = True  # prunes its member only (losslab.training.population)

    def __init__(self, trial: optuna.Trial, objective: Objective):
        self.trial, self.objective = trial, objective

    def on_epoch_end(self, state: Any, record: EpochRecord) -> None:
        value = self.objective.of_epoch(record)
        if not math.isnan(value) and self.trial.should_prune():
            raise StopTraining(f"pruned at epoch {record.epoch} (objective {value:.4f})")


class OptunaBackend(SearchBackend):
    """Optuna over the study's space (see the module docstring)."""

    name: ClassVar[str] = "optuna"

    @classmethod
    def check_settings(cls, raw: Mapping[str, Any], *, epochs: int) -> dict[str, Any]:
        check_settings(raw, epochs)
        return dict(raw)

    @classmethod
    def check_space(cls, space: SearchSpace) -> None:
        if space.dimensions() == 0:
            raise SpaceError("space", "nothing to search: every option is fixed")

    def __init__(self, context: BackendContext):
        super().__init__(context)
        study: optuna.Study = context.native
        self.pruner = make_pruner(context.settings, context.epochs)
        study.sampler = make_sampler(context.settings, context.seed)
        study.pruner = self.pruner
        self.pruning = not isinstance(self.pruner, optuna.pruners.NopPruner)

    def ask(self, slots: Sequence[Slot]) -> list[Proposal]:
        return [self._draw(slot.native) for slot in slots]

    def _draw(self, trial: optuna.Trial) -> Proposal:
        try:
            candidate, overrides = self.context.space.sample(trial)
        except (SpaceError, ValueError) as exc:
            return Proposal(None, invalid=f"invalid combination: {exc}")
        hooks = [_PruneHook(trial, self.context.objective)] if self.pruning else []
        return Proposal(candidate, overrides, dict(trial.params), hooks)
