"""The trainer hook of a ledger entry: its heartbeat and its objective curve, epoch by epoch."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import optuna

from losslab.search.objective import Objective
from losslab.training import EpochRecord, Hook

__all__ = ["EntryHook"]


class EntryHook(Hook):
    """Refreshes the entry's heartbeat (``beat(trial)``: the store writes it when it is due) and
    records the objective of every epoch (not for a ladder's promotion or race seed: Optuna's
    pruner compares rung-0 curves only)."""

    population_safe = True  # reads the epoch's record only (losslab.training.population)

    def __init__(
        self,
        trial: optuna.Trial,
        objective: Objective,
        beat: Callable[[optuna.Trial], None],
        report: bool = True,
    ):
        self.trial, self.objective, self.beat, self.report = trial, objective, beat, report

    def on_epoch_end(self, state: Any, record: EpochRecord) -> None:
        self.beat(self.trial)
        value = self.objective.of_epoch(record)
        if self.report and not math.isnan(value):
            self.trial.report(value, record.epoch)
