"""Lifecycle hooks of the trainer (nnU-Net's on_train_start / on_epoch_end, as objects).

Schedules, pruning, progress bars and tracking attach here instead of growing the trainer.
A hook may raise :class:`StopTraining` from ``on_epoch_end`` to end the run early as pruned;
the hooks after it still see that epoch (:func:`epoch_end`), so a run's record (the MLflow hook
comes last) holds the epoch it stopped on. A stop raised at the end of the last epoch stops
nothing: training is complete, and the trainer keeps the run, saying so in
``result.tags[STOPPED_AFTER_LAST_EPOCH]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from losslab.training.result import EpochRecord, Result
    from losslab.training.state import TrainState

__all__ = ["STOPPED_AFTER_LAST_EPOCH", "Hook", "StopTraining", "epoch_end", "stop_is_late"]

STOPPED_AFTER_LAST_EPOCH = "stopped_after_last_epoch"  # a result tag: why, and that it was kept


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


def epoch_end(hooks: Sequence[Hook], state: TrainState, record: EpochRecord) -> None:
    """Every hook's ``on_epoch_end``, in order, even after one of them stops the run.

    A :class:`StopTraining` or an interruption (``KeyboardInterrupt``: Ctrl-C, a time budget)
    raised by a hook is raised again once every hook has seen the epoch (the first one, when
    several raise), so that a pruner or a deadline early in the list does not keep the epoch
    from the hooks after it. Any other error is raised at once (the run fails).
    """
    stop: BaseException | None = None
    for hook in hooks:
        try:
            hook.on_epoch_end(state, record)
        except (StopTraining, KeyboardInterrupt) as exc:
            stop = stop or exc
    if stop is not None:
        raise stop


def stop_is_late(stop: StopTraining, epoch: int, epochs: int, tags: dict[str, str]) -> bool:
    """Whether ``stop`` came at the end of the last epoch, when training is complete; if so,
    the reason goes to the result's ``tags`` and the run is to be kept (tested, not pruned)."""
    if epoch < epochs:
        return False
    tags[STOPPED_AFTER_LAST_EPOCH] = (
        f"{stop or 'pruned'}: after the last epoch, when training was complete, so the run "
        "was kept and tested"
    )
    return True
