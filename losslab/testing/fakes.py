"""A fake trainer for search tests: no network, a deterministic score from the candidate's
key and seed, the trainer's hooks driven as the trainer drives them (microseconds an
evaluation); and ``StopAfter``, a Ctrl-C during the n-th evaluation of a study.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

from losslab.training import EpochRecord, Hook, Result, StopTraining
from losslab.training.hooks import epoch_end, stop_is_late

__all__ = ["FakeTrainer", "StopAfter"]


class FakeTrainer:
    """Drives the hooks as the trainer does (start, every hook at each epoch's end, end) and
    returns a deterministic Result: a per-class Dice from the hash of the candidate and the seed.

    ``fail_every``: every n-th evaluation this process trains ends "non-finite loss" (the
    candidate that goes NaN). ``epoch_seconds`` slows it down for the worker tests.
    ``test_cases``: how many test cases the result holds per-case Dice for (0: none), each
    the score plus a small deterministic jitter; ``test_offset(candidate)`` is added to them
    (a candidate that validates well and tests badly, for racing). ``epoch_gain``: scores are
    multiplied by ``1 - epoch_gain / epochs``, so a longer fidelity scores higher (0: alike).
    """

    trained: ClassVar[list[str]] = []  # candidate keys trained in this process (/plan if steered)
    evaluated: ClassVar[list[str]] = []  # the same with the fidelity and seed (@epochs:steps:seed)
    fail_every: ClassVar[int] = 0
    epoch_seconds: ClassVar[float] = 0.0
    test_cases: ClassVar[int] = 0
    test_offset: ClassVar[Callable[[Any], float] | None] = None
    epoch_gain: ClassVar[float] = 0.0

    @classmethod
    def reset(cls) -> None:
        """Back to the defaults (between tests)."""
        cls.trained, cls.evaluated, cls.fail_every, cls.epoch_seconds = [], [], 0, 0.0
        cls.test_cases, cls.test_offset, cls.epoch_gain = 0, None, 0.0

    def __init__(self, config, hooks):
        self.config, self.hooks = config, list(hooks)

    def fit(self, candidate, dataset) -> Result:
        # A run steered by a hook with a plan (greedy) is another evaluation of the candidate.
        plans = [repr(h.plan) for h in self.hooks if hasattr(h, "plan")]
        FakeTrainer.trained.append(candidate.key + "".join(f"/{p}" for p in plans))
        config = self.config
        FakeTrainer.evaluated.append(
            f"{FakeTrainer.trained[-1]}@{config.epochs}:{config.steps_per_epoch}:{config.seed}"
        )
        classes = list(dataset.class_names)
        digest = hashlib.sha256(f"{candidate.key}:{self.config.seed}".encode()).digest()
        scores = [0.2 + 0.7 * b / 255 for b in digest[: len(classes)]]
        if self.epoch_gain:
            scores = [s * (1.0 - self.epoch_gain / self.config.epochs) for s in scores]
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
            if self.test_cases:
                self._per_case(result, candidate, scores)
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

    def _per_case(self, result: Result, candidate: Any, scores: list[float]) -> None:
        offset = FakeTrainer.test_offset(candidate) if FakeTrainer.test_offset else 0.0
        rows = []
        for case in range(self.test_cases):
            text = f"{candidate.key}:{self.config.seed}:{case}"
            jitter = hashlib.sha256(text.encode()).digest()
            rows.append(
                [math.nan]
                + [
                    min(1.0, max(0.0, s + offset + 0.02 * (jitter[c] / 255 - 0.5)))
                    for c, s in enumerate(scores[1:], start=1)
                ]
            )
        result.test_cases = {"dice": rows}
        result.test_case_ids = [f"case{k}" for k in range(self.test_cases)]
        result.test_metrics = {
            "dice": [math.nan]
            + [sum(r[c] for r in rows) / len(rows) for c in range(1, len(scores))]
        }


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
