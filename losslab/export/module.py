"""A candidate's whole objective as a ``torch.nn.Module`` loss for any training loop.

:class:`ExportedLoss` computes what losslab's trainer computes at a step (``step_loss``): the
candidate's compiled terms (:func:`~losslab.losses.compile_terms`) reduced with the class
weights (:meth:`~losslab.losses.CompiledLoss.reduce_terms`), weighed by the static term weights
times the term schedule, the loss parameters set by the parameter schedule. It follows MONAI's
conventions (``forward(input, target)``, a scalar out) and advances its schedules only through
two explicit calls a loop makes:

- :meth:`ExportedLoss.set_progress` ``(step, total_steps)`` before each optimiser step: the
  term schedule, the parameter schedule and learned terms' ``progress`` read it;
- :meth:`ExportedLoss.on_epoch_end` ``(per_class_dice)`` after each validation: the class
  schedule (TCF, PCF, CBS, a learned rule...) updates the class weights from it.

Without these calls the loss is the loss of the first step of training. Nothing in ``forward``
reads a value back to the host, so it runs under autocast on a GPU without a sync.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from losslab.candidate import Candidate, ScheduleSpec
from losslab.export.deep_supervision import deep_supervision_weights, downsample_target
from losslab.losses import CompiledLoss, Terminals, compile_terms
from losslab.losses.compiler import compile_program
from losslab.schedules import (
    RULE_VOCABULARY,
    EpochContext,
    RuleSchedule,
    get_class_schedule,
    get_term_schedule,
)
from losslab.schedules.term_schedules import on_device
from losslab.training.setup import param_schedule_of

__all__ = ["ExportedLoss", "load_loss", "needs_frequencies"]

# The class schedules that weigh classes by their frequencies in the training data.
FREQUENCY_SCHEDULES = ("inverse_frequency", "median_frequency")


def needs_frequencies(spec: ScheduleSpec) -> bool:
    """Whether the class schedule ``spec`` reads the class frequencies of the training data: a
    frequency weighting given neither ``frequencies`` nor ``weights``, or a learned rule
    reading ``freq``."""
    params = spec.to_dict()["params"]
    if params.get("frequencies") is not None or params.get("weights") is not None:
        return False
    schedule = get_class_schedule(spec.name, num_classes=2, **params)
    if isinstance(schedule, RuleSchedule):
        program = compile_program([schedule.rule.tree], vocabulary=RULE_VOCABULARY)
        return "freq" in program.terminals
    return schedule.name in FREQUENCY_SCHEDULES


def _frequency_list(values: Sequence[float] | None, num_classes: int, what: str) -> list | None:
    if values is None:
        return None
    out = [float(v) for v in values]
    if len(out) != num_classes:
        raise ValueError(f"{what}: {num_classes} values expected (one per class), got {len(out)}")
    return out


class ExportedLoss(torch.nn.Module):
    """The objective of ``candidate`` as a loss module (MONAI conventions).

    ``forward(input, target)``: ``input`` logits ``[B, C, *spatial]`` (2D or 3D), ``target``
    labels ``[B, 1, *spatial]`` (or ``[B, *spatial]``, any number type) or one-hot
    ``[B, C, *spatial]``; returns a 0-d float32 tensor. ``input`` may be a list or tuple of
    deep-supervision outputs, full resolution first: each is weighed by nnU-Net's weights
    (:func:`~losslab.export.deep_supervision.deep_supervision_weights`), and ``target`` is then
    either one tensor, downsampled to each output's size as nnU-Net does, or a list of targets.

    Args:
        candidate: the objective (a losslab :class:`~losslab.candidate.Candidate`).
        num_classes: ``C``, background included (at least 2).
        epochs: the length of training in epochs: the class schedule's context (a learned
            rule reads ``t = epoch / epochs``); :meth:`on_epoch_end` may be called that often.
        frequencies: the class voxel frequencies of the training data (summing to 1), needed
            by a learned rule that reads ``freq``.
        balancing_frequencies: Hegde's class frequencies (voxels of a class over the voxels of
            the cases where it is present), needed by ``inverse_frequency`` and
            ``median_frequency``; default ``frequencies``.

    Raises:
        ValueError: a bad option, or a class schedule that needs the frequencies without them.
    """

    def __init__(
        self,
        candidate: Candidate,
        num_classes: int,
        *,
        epochs: int = 1000,
        frequencies: Sequence[float] | None = None,
        balancing_frequencies: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
        self.candidate = candidate
        self.num_classes = int(num_classes)
        self.epochs = int(epochs)
        spec = candidate.class_schedule
        self.class_schedule = get_class_schedule(
            spec.name, num_classes=self.num_classes, **spec.to_dict()["params"]
        )
        self.term_schedule = get_term_schedule(
            candidate.term_schedule.name,
            num_terms=len(candidate.terms),
            **candidate.term_schedule.to_dict()["params"],
        )
        self.param_schedule = param_schedule_of(candidate)
        freq = _frequency_list(frequencies, self.num_classes, "frequencies")
        balancing = _frequency_list(
            balancing_frequencies, self.num_classes, "balancing_frequencies"
        )
        if freq is None and balancing is None and needs_frequencies(spec):
            raise ValueError(
                f"the class schedule {spec.name!r} of candidate '{candidate.name}' reads the class "
                "frequencies of the training data: give frequencies= (and balancing_frequencies=)"
            )
        if freq is None:  # read by no schedule here (checked above): a placeholder
            freq = [1.0 / self.num_classes] * self.num_classes
        self.context = EpochContext.start(freq, self.epochs, balancing_frequencies=balancing)
        self.class_schedule.begin(self.context)
        self.compiled: CompiledLoss = compile_terms(candidate.terms)
        self.loss_values = candidate.loss_parameters()
        self.register_buffer("class_weights", self.class_schedule.weights, persistent=False)
        alphas = torch.tensor(candidate.term_weights, dtype=torch.float32)
        self.register_buffer("alphas", alphas, persistent=False)
        self.step, self.total_steps = 0, 1
        self._stepped_at: int | None = None  # the step whose term weights are in _term_weights
        self._term_weights: torch.Tensor | None = None

    # -- the two calls a training loop makes ----------------------------------------------------

    def set_progress(self, step: int, total_steps: int) -> None:
        """Training is at optimiser step ``step`` (0-based, the step about to be taken) of
        ``total_steps``; call it before each step (in nnU-Net:
        ``epoch * iterations_per_epoch + iteration`` of ``epochs * iterations_per_epoch``).

        The term schedule takes one step per new ``step`` (at the first ``forward`` with
        gradients; later calls at the same step, such as the other deep-supervision outputs or a
        validation, reuse its weights); the parameter schedule sets the loss parameters of
        ``step``; learned terms read ``step / total_steps`` as their progress.

        Raises:
            ValueError: ``step < 0`` or ``total_steps < 1``.
        """
        if isinstance(step, bool) or int(step) != step or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        if isinstance(total_steps, bool) or int(total_steps) != total_steps or total_steps < 1:
            raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
        self.step, self.total_steps = int(step), int(total_steps)

    def on_epoch_end(self, per_class_dice: Sequence[float] | torch.Tensor) -> torch.Tensor:
        """Give the class schedule this epoch's validation Dice and return the new class
        weights ``[C]`` (used from the next ``forward`` on).

        ``per_class_dice`` has ``C`` values (background first) or ``C - 1`` (the foreground, as
        nnU-Net's pseudo Dice and MONAI's ``DiceMetric(include_background=False)`` give it; the
        background is then not scored). ``NaN`` marks a class not scored this epoch.

        Raises:
            ValueError: the wrong number of values, or more calls than ``epochs``.
        """
        if isinstance(per_class_dice, torch.Tensor):
            per_class_dice = per_class_dice.detach().reshape(-1).cpu().tolist()
        scores = [float(s) for s in per_class_dice]
        if len(scores) == self.num_classes - 1:
            scores = [math.nan, *scores]
        if len(scores) != self.num_classes:
            raise ValueError(
                f"per_class_dice: {self.num_classes} values (or {self.num_classes - 1} without the "
                f"background) expected, got {len(scores)}"
            )
        if self.context.epoch == self.epochs:
            raise ValueError(
                f"on_epoch_end: called more than epochs={self.epochs} times; build the loss with "
                "the run's number of epochs"
            )
        self.context = self.context.next(scores)
        weights = self.class_schedule.update(self.context)
        self.class_weights.copy_(weights)  # once an epoch: a copy to the device is fine here
        return weights

    # -- forward --------------------------------------------------------------------------------

    def forward(
        self,
        input: torch.Tensor | Sequence[torch.Tensor],
        target: torch.Tensor | Sequence[torch.Tensor],
    ) -> torch.Tensor:
        if isinstance(input, list | tuple):
            return self._deep_supervision(list(input), target)
        if not isinstance(target, torch.Tensor):
            raise ValueError("one output needs one target tensor, got a list of targets")
        return self._single(input, target)

    def _deep_supervision(
        self, outputs: list[torch.Tensor], target: torch.Tensor | Sequence[torch.Tensor]
    ) -> torch.Tensor:
        if not outputs:
            raise ValueError("deep supervision: the list of outputs is empty")
        if isinstance(target, torch.Tensor):
            targets = [downsample_target(target, out.shape[2:]) for out in outputs]
        else:
            targets = list(target)
            if len(targets) != len(outputs):
                raise ValueError(
                    f"deep supervision: {len(outputs)} outputs but {len(targets)} targets"
                )
        weights = deep_supervision_weights(len(outputs))
        # The full-resolution output comes first: the term schedule steps on its values.
        parts = [w * self._single(o, t) for w, o, t in zip(weights, outputs, targets) if w != 0]
        return torch.stack(parts).sum()

    def _targets(
        self, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(labels [B, *spatial], one-hot [B, C, *spatial] or None)`` of a target."""
        if logits.dim() < 3 or logits.shape[1] != self.num_classes:
            raise ValueError(
                f"input: logits [B, {self.num_classes}, *spatial] expected, got shape "
                f"{tuple(logits.shape)}"
            )
        spatial = tuple(logits.shape[2:])
        shape = tuple(target.shape)
        if shape == (logits.shape[0], *spatial):
            return target.long(), None
        if len(shape) == logits.dim() and shape[0] == logits.shape[0] and shape[2:] == spatial:
            if shape[1] == 1:
                return target[:, 0].long(), None
            if shape[1] == self.num_classes:  # one-hot; the labels serve learned terms, masks
                # contiguous: the sums then run in the order they run for the labels' one-hot
                return target.argmax(1), target.contiguous()
        raise ValueError(
            f"target: labels [B, 1, *spatial] or one-hot [B, {self.num_classes}, *spatial] "
            f"matching input {tuple(logits.shape)} expected, got shape {shape}"
        )

    def _single(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labels, onehot = self._targets(logits, target)
        if self.class_weights.device != logits.device:  # once: a loss not moved with .to()
            self.class_weights = self.class_weights.to(logits.device)
            self.alphas = self.alphas.to(logits.device)
        if self.param_schedule is not None:
            self._set_loss_parameters(self.param_schedule.values_at(self.step), logits.device)
        progress = self.step / self.total_steps if self.compiled.networks else None
        terminals = Terminals(
            logits=logits,
            labels=labels,
            onehot=onehot,
            weights=self.class_weights,
            progress=progress,
        )
        values = self.compiled.evaluate(terminals)
        reduced = CompiledLoss.reduce_terms(
            values,
            self.class_weights,
            labels=labels,
            absent_classes=self.candidate.absent_classes,
        )
        return (self._weights_of_terms(reduced) * reduced).sum()

    def _weights_of_terms(self, reduced: torch.Tensor) -> torch.Tensor:
        """``alpha * term schedule``: stepped once per step, on the first values with gradients."""
        if torch.is_grad_enabled() and self._stepped_at != self.step:
            schedule = self.term_schedule.step(self.step, self.total_steps, reduced.detach())
            self._term_weights = self.alphas * schedule.to(reduced.device)
            self._stepped_at = self.step
        elif self._term_weights is None:  # no step taken yet: the schedule's start weights
            start = self.term_schedule.weights.to(reduced.device)
            return self.alphas * start
        return self._term_weights

    def _set_loss_parameters(self, values: dict[str, float], device: torch.device) -> None:
        """The loss parameters at ``values``' addresses, recompiling only when one changes (as
        :meth:`losslab.training.state.TrainState.set_loss_parameters` does for the trainer)."""
        changed = {a: float(v) for a, v in values.items() if self.loss_values.get(a) != float(v)}
        if not changed:
            return
        current = {**self.loss_values, **changed}
        base = self.candidate.loss_parameters()
        terms, weights = self.candidate.with_loss_parameters(
            {a: v for a, v in current.items() if base.get(a) != v}
        )
        self.compiled = compile_terms(terms)
        self.alphas = on_device(weights, device)
        self.loss_values = current

    def extra_repr(self) -> str:
        return f"candidate={self.candidate.name!r}, num_classes={self.num_classes}"


def load_loss(
    candidate_file: str | Path,
    num_classes: int,
    *,
    lossnets: str | Path | None = None,
    **options: Any,
) -> ExportedLoss:
    """The :class:`ExportedLoss` of a candidate JSON file (``candidate.json``,
    ``best_candidate.json``), its learned loss networks looked up first in ``lossnets``;
    ``options`` as for :class:`ExportedLoss` (``epochs``, ``frequencies``...).

    Raises:
        ConfigError: the file cannot be read or is not a candidate (naming it).
    """
    from losslab.config import read_candidate_file
    from losslab.losses import add_search_folder

    if lossnets is not None and Path(lossnets).is_dir():
        add_search_folder(lossnets)
    candidate = read_candidate_file(candidate_file, str(candidate_file))
    return ExportedLoss(candidate, num_classes, **options)
