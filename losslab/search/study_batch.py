"""How a study runs one batch of reserved slots: recorded, then trained, then told.

Every proposal of a batch is recorded in the store before the first trains, so a worker killed
inside a batch (a GP generation) leaves all of them to be reclaimed and run again. Withdrawn
slots are given back and invalid draws recorded as failed. The rest trains together as
populations on one device (``losslab.training.population``) when the study allows populations
(``workers.population``), else one at a time, each stopped by the time budget as it comes.
Either way each evaluation is recorded as it would be alone. :class:`BatchRunner` is a part of
:class:`~losslab.search.study.Study`, which it reaches through :class:`BatchHost` only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from losslab.search.backend import Proposal, Slot, TrialRecord
from losslab.search.deadline import TimeUp
from losslab.search.evaluator import BatchItem
from losslab.search.study_console import describe

if TYPE_CHECKING:
    from losslab.search.backend import SearchBackend
    from losslab.search.evaluator import Evaluation, Evaluator
    from losslab.search.store.ledger import StudyStore
    from losslab.search.study_config import StudyConfig
    from losslab.search.study_console import StudyProgress
    from losslab.training import Hook

__all__ = ["BatchHost", "BatchRunner"]


class BatchHost(Protocol):
    """What a batch needs of its study: the store, backend and evaluator, the display, the
    time budget, the evaluation of one proposal, the hooks of every evaluation, the report."""

    store: StudyStore
    backend: SearchBackend
    evaluator: Evaluator
    display: StudyProgress
    config: StudyConfig

    def time_left(self) -> bool: ...

    def evaluate(
        self,
        proposal: Proposal,
        origin: str,
        tags: dict,
        hooks: Sequence[Hook] = (),
        on_run: Callable[[str], None] | None = None,
    ) -> Evaluation: ...

    def common_hooks(self) -> list[Hook]: ...

    def report(self, text: str, status: str, trial: bool) -> None: ...


class BatchRunner:
    """The batch part of a study (composed into :class:`~losslab.search.study.Study`)."""

    def __init__(self, host: BatchHost):
        self.host = host

    def run(self, slots: list[Slot], proposals: list[Proposal]) -> None:
        # Every proposal of the batch is recorded before the first trains, so a worker killed
        # inside a batch (a GP generation) leaves all of them to be reclaimed and run again.
        for slot, proposal in zip(slots, proposals):
            self.host.store.start(slot, proposal)
        runnable = []
        for slot, proposal in zip(slots, proposals):
            if proposal.withdrawn:
                self.host.store.interrupt(slot, "withdrawn: another worker took its candidate")
            elif proposal.candidate is None:
                record = self.host.store.finish(slot, None, proposal.invalid)
                self._tell(slot, proposal, record, None)
                self._report_record(record)
            else:
                runnable.append((slot, proposal))
        # A population shares one fidelity and seed: the ladder's entries train on their own.
        together = [(s, p) for s, p in runnable if (p.rung, p.seed) == (0, 0)]
        alone = [(s, p) for s, p in runnable if (p.rung, p.seed) != (0, 0)]
        if len(together) > 1 and self.host.evaluator.max_population > 1:
            self._train_together(together)
        else:
            alone = together + alone
        self._train_in_turn(alone)

    def _trial_tags(self, slot: Slot, proposal: Proposal) -> dict[str, str]:
        tags = {**proposal.tags, "losslab.role": "trial", "losslab.trial": str(slot.number)}
        if not self.host.config.ladder.plain:
            tags.setdefault("losslab.rung", str(proposal.rung))
        return tags

    def _tell(self, slot: Slot, proposal: Proposal, record: TrialRecord, result) -> None:
        """The backend hears of its own proposals only (not of the ladder's promotions)."""
        if not proposal.on_ladder:
            self.host.backend.tell(slot, proposal, record, result)

    def _train_together(self, runnable: list[tuple[Slot, Proposal]]) -> None:
        """The batch's evaluations trained as populations on one device (``population.py``);
        each is recorded as it would be alone."""
        slots = [slot for slot, _ in runnable]
        proposals = [proposal for _, proposal in runnable]
        if not self.host.time_left():
            self._interrupt(slots, proposals, "the time budget ended")
            return
        items = []
        for slot, proposal in runnable:
            origin = f"trial {slot.number}"
            hooks = [
                self.host.display.run_hook(f"{origin}: {proposal.candidate.name}"),
                self.host.store.epoch_hook(slot, self.host.config.objective),
                *proposal.hooks,
                *self.host.common_hooks(),
            ]
            items.append(
                BatchItem(
                    proposal.candidate,
                    overrides=proposal.overrides,
                    variant=proposal.variant,
                    hooks=hooks,
                    tags=self._trial_tags(slot, proposal),
                    origin=origin,
                    on_run=lambda run_id, slot=slot: self.host.store.link_run(slot, run_id),
                )
            )
        try:
            evaluations = self.host.evaluator.evaluate_batch(items)
        except KeyboardInterrupt as stop:  # finished members are cached: found again on resume
            why = str(stop) if isinstance(stop, TimeUp) else "interrupted by the user or a signal"
            self._interrupt(slots, proposals, why)
            raise
        for slot, proposal, evaluation in zip(slots, proposals, evaluations):
            record = self.host.store.finish(slot, evaluation)
            self._tell(slot, proposal, record, evaluation.result)
            self._report_record(record)

    def _train_in_turn(self, runnable: list[tuple[Slot, Proposal]]) -> None:
        slots = [slot for slot, _ in runnable]
        proposals = [proposal for _, proposal in runnable]
        for index, (slot, proposal) in enumerate(runnable):
            if not self.host.time_left():
                self._interrupt(slots[index:], proposals[index:], "the time budget ended")
                return
            hooks = [self.host.store.epoch_hook(slot, self.host.config.objective), *proposal.hooks]
            try:
                evaluation = self.host.evaluate(
                    proposal,
                    f"trial {slot.number}",
                    self._trial_tags(slot, proposal),
                    hooks,
                    on_run=lambda run_id, slot=slot: self.host.store.link_run(slot, run_id),
                )
            except KeyboardInterrupt as stop:  # Ctrl-C, a signal, or the time budget (TimeUp)
                why = (
                    str(stop) if isinstance(stop, TimeUp) else "interrupted by the user or a signal"
                )
                self._interrupt(slots[index:], proposals[index:], why)
                raise
            record = self.host.store.finish(slot, evaluation)
            self._tell(slot, proposal, record, evaluation.result)
            self._report_record(record)

    def _interrupt(self, slots: Sequence[Slot], proposals: Sequence[Proposal], why: str) -> None:
        for slot, proposal in zip(slots, proposals):
            self.host.store.interrupt(slot, why, proposal)

    def _report_record(self, record: TrialRecord) -> None:
        name = record.candidate.name if record.candidate else "(invalid draw)"
        where = ""
        if record.root is not None:
            where = f" (trial {record.root} at rung {record.rung}, seed {record.seed})"
        line = describe(
            f"trial {record.number}{where}",
            name,
            record.status,
            record.value,
            record.reason,
            bool(record.cached_from),
        )
        self.host.report(line, record.status, trial=True)
