"""Lifecycle hooks of the trainer (nnU-Net's on_train_start / on_epoch_end, as objects).

Schedules, pruning, progress bars and tracking attach here instead of growing the trainer.
A hook may raise :class:`StopTraining` from ``on_epoch_end`` to end the run early as pruned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from losslab.training.result import EpochRecord, Result
    from losslab.training.trainer import TrainState

__all__ = ["Hook", "StopTraining"]


class StopTraining(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a hook to stop the run; the Result is ``pruned`` with this message."""


class Hook:
    """Base class: override what you need. The state is live; do not keep references to it.

    ``population_safe``: the hook works on the state of one member of a population
    (``losslab.training.population``: reads it, may change its weights and raise
    ``StopTraining``, but takes no training step of its own and does not restore the model).
    ``False`` unless a hook class says so.
    """

    population_safe: ClassVar[bool] = False

    def on_train_start(self, state: TrainState) -> None:
        """After the model, optimiser and data are ready, before the first step."""

    def on_step_end(self, state: TrainState) -> None:
        """After each optimiser step. Must not sync with the host on GPU (no ``.item()``)."""

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        """After validation; ``state.class_weights`` / ``state.term_weights`` may be changed."""

    def on_train_end(self, state: TrainState | None, result: Result) -> None:
        """Always called once, whether the run succeeded, failed or was pruned."""
