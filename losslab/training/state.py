"""``TrainState``: the live state of one run, handed to hooks, and its snapshot.

A hook may change the loss's parameters mid-run (:meth:`TrainState.set_loss_parameters`, as a
parameter schedule or a greedy controller does), take extra training steps through
``state.trainer`` and put everything back with a :class:`Snapshot`: the model, the optimiser,
the term schedule, the patch sampler's and augmentation's random streams, torch's global random
state and the step counter, so that a look-ahead leaves no trace.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from losslab.candidate import Candidate
from losslab.data import PatchSampler, SegmentationDataset
from losslab.losses import CompiledLoss, compile_terms
from losslab.schedules import ClassSchedule, EpochContext, ParamSchedule, TermSchedule
from losslab.schedules.term_schedules import on_device
from losslab.training.config import TrainConfig
from losslab.training.result import EpochRecord

if TYPE_CHECKING:
    from losslab.training.trainer import Trainer

__all__ = ["Snapshot", "TrainState"]


@dataclass
class TrainState:
    """The live state of a run, handed to hooks."""

    config: TrainConfig
    candidate: Candidate
    dataset: SegmentationDataset
    device: torch.device
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss: CompiledLoss
    class_schedule: ClassSchedule
    term_schedule: TermSchedule
    class_weights: torch.Tensor  # [C], float32, on device: the class schedule's current weights
    term_weights: torch.Tensor  # [K], float32, on device: static alphas x term schedule
    amp_dtype: torch.dtype | None
    context: EpochContext  # what the class schedule saw last (epoch 0: the start context)
    sampler: PatchSampler | None = None
    augment_generator: torch.Generator | None = None
    val_patches: list = field(default_factory=list)
    param_schedule: ParamSchedule | None = None
    trainable: list = field(default_factory=list)  # the model's parameters that train
    trainer: Trainer | None = None
    alphas: torch.Tensor | None = None  # [K] the static term weights now (weight<k> addresses)
    loss_values: dict[str, float] = field(default_factory=dict)  # every loss parameter now
    epoch: int = 0
    step: int = 0
    history: list[EpochRecord] = field(default_factory=list)

    def set_loss_parameters(self, values: dict[str, float]) -> bool:
        """Give the loss parameters at ``values``' addresses these values from the next step on.

        The loss is recompiled only when a value changes. Returns whether one did.

        Raises:
            ValueError: an unknown address or a value out of its range.
        """
        changed = {a: float(v) for a, v in values.items() if self.loss_values.get(a) != float(v)}
        if not changed:
            return False
        current = {**self.loss_values, **changed}
        base = self.candidate.loss_parameters()
        terms, weights = self.candidate.with_loss_parameters(
            {a: v for a, v in current.items() if base.get(a) != v}
        )
        self.loss = compile_terms(terms)
        self.alphas = on_device(weights, self.device)  # no host copy: this runs inside a step
        self.loss_values = current
        return True


def _rng_states(device: torch.device) -> dict[str, Any]:
    states: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


@dataclass
class Snapshot:
    """Everything a training step changes, copied, so that :meth:`restore` undoes the steps.

    Model and optimiser are copied on their device (no host sync). The class weights and the
    class schedule change only at the end of an epoch, never inside a look-ahead.
    """

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    term_schedule: Any
    sampler_rng: torch.Tensor | None
    augment_rng: torch.Tensor | None
    rng: dict[str, Any]
    step: int
    term_weights: torch.Tensor
    loss_values: dict[str, float]

    @classmethod
    def take(cls, state: TrainState) -> Snapshot:
        return cls(
            model={k: v.detach().clone() for k, v in state.model.state_dict().items()},
            optimizer=copy.deepcopy(state.optimizer.state_dict()),
            term_schedule=copy.deepcopy(state.term_schedule),
            sampler_rng=state.sampler.get_rng_state() if state.sampler is not None else None,
            augment_rng=(
                state.augment_generator.get_state() if state.augment_generator is not None else None
            ),
            rng=_rng_states(state.device),
            step=state.step,
            term_weights=state.term_weights.clone(),
            loss_values=dict(state.loss_values),
        )

    def restore(self, state: TrainState) -> None:
        """Put ``state`` back as it was when the snapshot was taken."""
        state.model.load_state_dict(self.model)
        state.optimizer.load_state_dict(copy.deepcopy(self.optimizer))
        state.term_schedule = copy.deepcopy(self.term_schedule)
        if state.sampler is not None and self.sampler_rng is not None:
            state.sampler.set_rng_state(self.sampler_rng)
        if state.augment_generator is not None and self.augment_rng is not None:
            state.augment_generator.set_state(self.augment_rng)
        torch.set_rng_state(self.rng["cpu"])
        if "cuda" in self.rng:
            torch.cuda.set_rng_state(self.rng["cuda"], state.device)
        state.step = self.step
        state.term_weights = self.term_weights.clone()
        state.set_loss_parameters(self.loss_values)
