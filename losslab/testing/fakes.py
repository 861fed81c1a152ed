"""A fake trainer for search tests: no network, a deterministic score from the candidate's
key and seed, the trainer's hooks driven as the trainer drives them (microseconds an
evaluation); and ``StopAfter``, a Ctrl-C during the n-th evaluation of a study.
"""

from __future__ import annotations

import hashlib
import math
import time
from types import SimpleNamespace
from typing import ClassVar

from losslab.training import EpochRecord, Hook, Result, StopTraining
from losslab.training.hooks import epoch_end, stop_is_late

__all__ = ["FakeTrainer", "StopAfter"]


class FakeTrainer:
    """Drives the hooks as the trainer does (start, every hook at each epoch's end, end) and
    returns a deterministic Result: a per-class Dice from the hash of the candidate and the seed.

    ``fail_every``: every n-th evaluation this process trains ends "non-finite loss" (the
    candidate that goes NaN). ``epoch_seconds`` slows it down for the worker tests.
    """

    trained: ClassVar[list[str]] = []  # candidate keys trained in this process (/plan if steered)
    fail_every: ClassVar[int] = 0
    epoch_seconds: ClassVar[float] = 0.0

    def __init__(self, config, hooks):
        self.config, self.hooks = config, list(hooks)

    def fit(self, candidate, dataset) -> Result:
        # A run steered by a hook with a plan (greedy) is another evaluation of the candidate.
        plans = [repr(h.plan) for h in self.hooks if hasattr(h, "plan")]
        FakeTrainer.trained.append(candidate.key + "".join(f"/{p}" for p in plans))
        classes = list(dataset.class_names)
        digest = hashlib.sha256(f"{candidate.key}:{self.config.seed}".encode()).digest()
        scores = [0.2 + 0.7 * b / 255 for b in digest[: len(classes)]]
        state = SimpleNamespace(
            config=self.config,
            candidate=candidate,
            dataset=dataset,
            epoch=0,
            step=0,
            history=[],
            loss_values=candidate.loss_parameters(),
        )
        result = Result(status="failed", class_names=classes)
        failing = self.fail_every and len(FakeTrainer.trained) % self.fail_every == 0
        try:
            for hook in self.hooks:
                hook.on_train_start(state)
            for epoch in range(1, self.config.epochs + 1):
                time.sleep(self.epoch_seconds)
                state.epoch = epoch
                ramp = epoch / self.config.epochs
                record = EpochRecord(
                    epoch=epoch,
                    train_loss=1.0 - ramp,
                    val_dice=[math.nan] + [s * ramp for s in scores[1:]],
                    class_weights=[1.0] * len(classes),
                    term_weights=[1.0] * len(candidate.terms),
                    wall_time=0.0,
                )
                state.history.append(record)
                try:
                    epoch_end(self.hooks, state, record)
                except StopTraining as stop:
                    if not stop_is_late(stop, epoch, self.config.epochs, result.tags):
                        raise
                if failing:
                    raise FloatingPointError(f"non-finite loss at step {epoch}")
            result.test_metrics = {"dice": [math.nan, *scores[1:]]}
            result.status = "ok"
        except StopTraining as stop:
            result.status, result.reason = "pruned", str(stop)
        except FloatingPointError as exc:
            result.reason, result.failed_step = str(exc), 1
        except BaseException:
            result.status, result.reason = "interrupted", "interrupted by the user or a signal"
            raise
        finally:
            result.history = list(state.history)
            for hook in self.hooks:
                hook.on_train_end(state, result)
        return result


class _Interrupt(Hook):
    def on_epoch_end(self, state, record) -> None:
        raise KeyboardInterrupt("stopped by the test")


class StopAfter:
    """``extra_hooks`` of a study: Ctrl-C during the ``n``-th evaluation (baselines count)."""

    def __init__(self, n: int):
        self.n, self.started = n, 0

    def __call__(self) -> list[Hook]:
        self.started += 1
        return [_Interrupt()] if self.started == self.n else []
