"""The inner-loop trainer: trains one candidate on one dataset and returns a :class:`Result`.

Every search backend calls it thousands of times, so it is built to be fast and to never lose a
result: a non-finite loss or gradient, divergence, out-of-memory or any other error ends the run
as a ``failed`` Result with the reason and the step; a hook raising :class:`StopTraining` ends it
as ``pruned`` (unless it does so after the last epoch: ``losslab.training.hooks``). Nothing raised inside a run escapes it, except an interruption (Ctrl-C, SIGTERM
turned into ``KeyboardInterrupt``), which is recorded as ``interrupted`` and re-raised.

On a GPU the step never syncs with the host: losses and failure flags accumulate on the device
and are read once per epoch. On the CPU, where a sync is free, they are read every step so that a
failing candidate stops at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch

from losslab.candidate import Candidate
from losslab.data import SegmentationDataset, augment
from losslab.losses import CompiledLoss
from losslab.training.config import TrainConfig, resolve_device
from losslab.training.determinism import TorchFlags, configure_determinism
from losslab.training.hooks import Hook, StopTraining, epoch_end, stop_is_late
from losslab.training.inference import SplitDetails, evaluate_split
from losslab.training.result import EpochRecord, Result
from losslab.training.setup import (
    amp_dtype,
    run_state,
    start_context,
    train_sampler,
    validation_patches,
)
from losslab.training.state import TrainState
from losslab.training.validation import choose_validation_patches, evaluate_patches

__all__ = ["TrainState", "Trainer", "start_context", "step_loss", "train"]


class _Failure(Exception):
    def __init__(self, reason: str, step: int | None = None):
        super().__init__(reason)
        self.step = step


def step_loss(state: TrainState, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One step's total loss of ``state``'s candidate from the network's ``logits`` (no sync).

    The terms reduced with the class weights, then weighed by the static term weights times the
    term schedule, which takes its step here (``state.term_weights`` is set). Apart from
    :meth:`Trainer.step`, the population trainer calls it once per member on its slice of the
    batched network's output.
    """
    total_steps = state.config.epochs * state.config.steps_per_epoch
    # A learned loss term may read the progress of training (a Python float: no sync); a
    # loss without learned terms (or one swapped in by a hook or a test) is called as ever.
    extra = {"progress": state.step / total_steps} if getattr(state.loss, "networks", {}) else {}
    values = state.loss(logits, labels, state.class_weights, **extra)
    reduced = CompiledLoss.reduce_terms(
        values,
        state.class_weights,
        labels=labels,
        absent_classes=state.candidate.absent_classes,
    )
    # Adaptive schedules (SoftAdapt, CoV) read this step's term values, detached.
    schedule = state.term_schedule.step(state.step, total_steps, reduced.detach())
    state.term_weights = state.alphas * schedule.to(state.device)
    return (state.term_weights * reduced).sum()


class Trainer:
    """Trains candidates with one :class:`TrainConfig` and a list of hooks."""

    def __init__(self, config: TrainConfig, hooks: Sequence[Hook] = ()):
        self.config = config
        self.hooks = list(hooks)

    def fit(self, candidate: Candidate, dataset: SegmentationDataset) -> Result:
        """Train ``candidate`` on ``dataset``; always returns a Result, never raises for a run."""
        start = time.perf_counter()
        state: TrainState | None = None
        result = Result(status="failed", class_names=list(dataset.class_names))
        flags = TorchFlags.save()  # process-wide: put back however the run ends
        try:
            state = self._setup(candidate, dataset)
            for hook in self.hooks:
                hook.on_train_start(state)
            for _ in range(self.config.epochs):
                record = self._train_epoch(state)
                state.history.append(record)
                state.context = state.context.next(record.val_dice)
                weights = state.class_schedule.update(state.context)
                state.class_weights = weights.to(state.device, torch.float32)
                try:
                    epoch_end(self.hooks, state, record)
                except StopTraining as stop:
                    if not stop_is_late(stop, state.epoch, self.config.epochs, result.tags):
                        raise
            self.test(state, result)
            result.status = "ok"
        except StopTraining as stop:
            result.status, result.reason = "pruned", str(stop) or "pruned"
        except _Failure as failure:
            result.reason, result.failed_step = str(failure), failure.step
        except torch.cuda.OutOfMemoryError as exc:
            result.reason = f"out of memory: {str(exc).splitlines()[0]}"
        except Exception as exc:  # a run must never kill a study
            result.reason = f"{type(exc).__name__}: {exc}"
        except BaseException:  # Ctrl-C or SIGTERM: record the run as interrupted, then stop
            result.status, result.reason = "interrupted", "interrupted by the user or a signal"
            raise
        finally:
            flags.restore()
            if state is not None:
                result.history, result.steps = state.history, state.step
                result.device = str(state.device)
            result.wall_time = time.perf_counter() - start
            for hook in self.hooks:
                hook.on_train_end(state, result)
        return result

    def _setup(self, candidate: Candidate, dataset: SegmentationDataset) -> TrainState:
        config = self.config
        device = resolve_device(config.device)
        configure_determinism(config.deterministic, device)
        data = dataset.to(device)
        return run_state(
            config,
            candidate,
            data,
            device=device,
            sampler=train_sampler(config, data, device, config.seed),
            augment_generator=torch.Generator(device=device).manual_seed(config.seed + 1),
            val_patches=validation_patches(config, dataset, config.seed),
            amp_dtype=amp_dtype(config, device),
            trainer=self,
        )

    def _train_epoch(self, state: TrainState) -> EpochRecord:
        config, device = self.config, state.device
        start = time.perf_counter()
        state.epoch += 1
        state.model.train()
        eager = device.type == "cpu"  # a host sync costs nothing there: stop at the first NaN
        loss_sum = torch.zeros((), device=device)
        bad = torch.full((2,), -1, dtype=torch.long, device=device)  # first bad loss / grad step
        class_weights = state.class_weights.clone()
        for _ in range(config.steps_per_epoch):
            total, grad_norm = self.step(state)
            loss_sum += total.detach()
            finite = torch.stack([torch.isfinite(total.detach()), torch.isfinite(grad_norm)])
            bad = torch.where(~finite & (bad < 0), state.step, bad)
            if eager and bool((bad >= 0).any()):
                break
            for hook in self.hooks:
                hook.on_step_end(state)
        self._raise_if_bad(state, bad.tolist(), float(loss_sum) / config.steps_per_epoch)
        last = state.epoch == config.epochs
        if state.epoch % config.val_every == 0 or last:
            val_dice = self._validate(state)
        else:
            val_dice = [math.nan] * state.dataset.num_classes
        return EpochRecord(
            epoch=state.epoch,
            train_loss=float(loss_sum) / config.steps_per_epoch,
            val_dice=val_dice,
            class_weights=class_weights.tolist(),
            term_weights=state.term_weights.tolist(),
            wall_time=time.perf_counter() - start,
        )

    def step(self, state: TrainState) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step: ``(total loss, gradient norm)``, both on the device (no sync).

        The parameter schedule is applied first (the loss is recompiled when a value changes).
        Public so that a hook can take look-ahead steps (see :class:`~losslab.training.state.
        Snapshot`); hooks' ``on_step_end`` is not called for them.
        """
        config, device = self.config, state.device
        if state.param_schedule is not None:
            state.set_loss_parameters(state.param_schedule.values_at(state.step))
        images, labels = state.sampler.sample()
        if config.augment:
            images, labels = augment(images, labels, state.augment_generator)
        with torch.autocast(
            device.type,
            dtype=state.amp_dtype or torch.float32,
            enabled=state.amp_dtype is not None,
        ):
            logits = state.model(images)
        total = step_loss(state, logits, labels)
        state.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(state.trainable, config.grad_clip)
        state.optimizer.step()
        state.step += 1
        return total, grad_norm

    def _raise_if_bad(self, state: TrainState, bad: list[int], mean_loss: float) -> None:
        where = f"(epoch {state.epoch})"
        if bad[0] >= 0:
            raise _Failure(f"non-finite loss at step {bad[0]} {where}", bad[0])
        if bad[1] >= 0:
            raise _Failure(f"non-finite gradient at step {bad[1]} {where}", bad[1])
        if state.history:
            reference = abs(state.history[0].train_loss)
            if reference > 0 and abs(mean_loss) > self.config.divergence_factor * reference:
                raise _Failure(
                    f"diverged: mean loss {mean_loss:.4g} in epoch {state.epoch} is more than "
                    f"{self.config.divergence_factor:g}x the first epoch's {reference:.4g}",
                    state.step,
                )

    def _validate(self, state: TrainState) -> list[float]:
        """Per-class validation Dice: the fixed patches or the full sliding window."""
        if self.config.validation == "sliding_window":
            return self._scores(state, "val", ("dice",))["dice"]
        return self.patch_scores(state)

    def patch_scores(self, state: TrainState, metric: str = "dice") -> list[float]:
        """Per-class ``metric`` (``dice``, ``soft_dice``...) on the validation patches.

        The patches are the run's fixed validation patches (chosen here on first use when the
        run validates by sliding window). No random state is touched.
        """
        indices = state.dataset.splits.get("val", [])
        if not state.val_patches:
            state.val_patches = choose_validation_patches(
                [state.dataset.labels[i] for i in indices],
                state.dataset.num_classes,
                self.config.patch_size,
                self.config.val_patches_per_class,
                seed=self.config.seed,
            )
        return evaluate_patches(
            state.model,
            [state.dataset.images[i] for i in indices],
            [state.dataset.labels[i] for i in indices],
            state.dataset.num_classes,
            state.val_patches,
            patch_size=self.config.patch_size,
            batch_size=self.config.sw_batch_size,
            amp_dtype=state.amp_dtype,
            metrics=(metric,),
        )[metric]

    def _scores(
        self,
        state: TrainState,
        split: str,
        metrics: tuple[str, ...],
        details: SplitDetails | None = None,
    ) -> dict[str, list[float]]:
        indices = state.dataset.splits[split]
        return evaluate_split(
            state.model,
            [state.dataset.images[i] for i in indices],
            [state.dataset.labels[i] for i in indices],
            state.dataset.num_classes,
            patch_size=self.config.patch_size,
            sw_batch_size=self.config.sw_batch_size,
            overlap=self.config.sw_overlap,
            amp_dtype=state.amp_dtype,
            metrics=metrics,
            spacing=[state.dataset.spacings[i] for i in indices],
            details=details,
        )

    def test(self, state: TrainState, result: Result) -> None:
        """Score the test split into ``result``: per-class means, per-case values, case ids and
        the logit-margin histograms."""
        metrics = ("dice", "iou", "sensitivity", "precision") + (
            ("hd95",) if self.config.hd95 else ()
        )
        details = SplitDetails()
        result.test_metrics = self._scores(state, "test", metrics, details)
        result.test_cases = details.per_case
        dataset = state.dataset
        result.test_case_ids = [dataset.case_ids[i] for i in dataset.splits["test"]]
        result.logit_hist = details.histograms(dataset.class_names)


def train(
    candidate: Candidate,
    dataset: SegmentationDataset,
    config: TrainConfig | None = None,
    hooks: Sequence[Hook] = (),
) -> Result:
    """Train one candidate (convenience wrapper of :class:`Trainer`)."""
    return Trainer(config or TrainConfig(), hooks).fit(candidate, dataset)
