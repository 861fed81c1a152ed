"""How a study runs one batch of reserved slots: recorded, then trained, then told.

Every proposal of a batch is recorded in the store before the first trains, so a worker killed
inside a batch (a GP generation) leaves all of them to be reclaimed and run again. Withdrawn
slots are given back and invalid draws recorded as failed. The rest trains together as
populations on one device (``losslab.training.population``) when the study allows populations
(``workers.population``), else one at a time, each stopped by the time budget as it comes.
Either way each evaluation is recorded as it would be alone. :class:`BatchRunner` is a part of
:class:`~losslab.search.study.Study`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from losslab.search.backend import Proposal, Slot, TrialRecord
from losslab.search.deadline import TimeUp
from losslab.search.evaluator import BatchItem
from losslab.search.study_console import describe

__all__ = ["BatchRunner"]


class BatchRunner:
    """The batch part of a study (it uses the study's store, backend, evaluator, display)."""

    store: Any
    backend: Any
    evaluator: Any
    display: Any
    config: Any

    def _run_batch(self, slots: list[Slot], proposals: list[Proposal]) -> None:
        # Every proposal of the batch is recorded before the first trains, so a worker killed
        # inside a batch (a GP generation) leaves all of them to be reclaimed and run again.
        for slot, proposal in zip(slots, proposals):
            self.store.start(slot, proposal)
        runnable = []
        for slot, proposal in zip(slots, proposals):
            if proposal.withdrawn:
                self.store.interrupt(slot, "withdrawn: another worker took its candidate")
            elif proposal.candidate is None:
                record = self.store.finish(slot, None, proposal.invalid)
                self.backend.tell(slot, proposal, record, None)
                self._report_record(record)
            else:
                runnable.append((slot, proposal))
        if len(runnable) > 1 and self.evaluator.max_population > 1:
            self._train_together(runnable)
        else:
            self._train_in_turn(runnable)

    def _trial_tags(self, slot: Slot, proposal: Proposal) -> dict[str, str]:
        return {**proposal.tags, "losslab.role": "trial", "losslab.trial": str(slot.number)}

    def _train_together(self, runnable: list[tuple[Slot, Proposal]]) -> None:
        """The batch's evaluations trained as populations on one device (``population.py``);
        each is recorded as it would be alone."""
        slots = [slot for slot, _ in runnable]
        proposals = [proposal for _, proposal in runnable]
        if not self.time_left():
            self._interrupt(slots, proposals, "the time budget ended")
            return
        items = []
        for slot, proposal in runnable:
            origin = f"trial {slot.number}"
            hooks = [
                self.display.run_hook(f"{origin}: {proposal.candidate.name}"),
                self.store.epoch_hook(slot, self.config.objective),
                *proposal.hooks,
                *self._common_hooks(),
            ]
            items.append(
                BatchItem(
                    proposal.candidate,
                    overrides=proposal.overrides,
                    variant=proposal.variant,
                    hooks=hooks,
                    tags=self._trial_tags(slot, proposal),
                    origin=origin,
                    on_run=lambda run_id, slot=slot: self.store.link_run(slot, run_id),
                )
            )
        try:
            evaluations = self.evaluator.evaluate_batch(items)
        except KeyboardInterrupt as stop:  # finished members are cached: found again on resume
            why = str(stop) if isinstance(stop, TimeUp) else "interrupted by the user or a signal"
            self._interrupt(slots, proposals, why)
            raise
        for slot, proposal, evaluation in zip(slots, proposals, evaluations):
            record = self.store.finish(slot, evaluation)
            self.backend.tell(slot, proposal, record, evaluation.result)
            self._report_record(record)

    def _train_in_turn(self, runnable: list[tuple[Slot, Proposal]]) -> None:
        slots = [slot for slot, _ in runnable]
        proposals = [proposal for _, proposal in runnable]
        for index, (slot, proposal) in enumerate(runnable):
            if not self.time_left():
                self._interrupt(slots[index:], proposals[index:], "the time budget ended")
                return
            hooks = [self.store.epoch_hook(slot, self.config.objective), *proposal.hooks]
            try:
                evaluation = self._evaluate(
                    proposal,
                    f"trial {slot.number}",
                    self._trial_tags(slot, proposal),
                    hooks,
                    on_run=lambda run_id, slot=slot: self.store.link_run(slot, run_id),
                )
            except KeyboardInterrupt as stop:  # Ctrl-C, a signal, or the time budget (TimeUp)
                why = (
                    str(stop) if isinstance(stop, TimeUp) else "interrupted by the user or a signal"
                )
                self._interrupt(slots[index:], proposals[index:], why)
                raise
            record = self.store.finish(slot, evaluation)
            self.backend.tell(slot, proposal, record, evaluation.result)
            self._report_record(record)

    def _interrupt(self, slots: Sequence[Slot], proposals: Sequence[Proposal], why: str) -> None:
        for slot, proposal in zip(slots, proposals):
            self.store.interrupt(slot, why, proposal)

    def _report_record(self, record: TrialRecord) -> None:
        name = record.candidate.name if record.candidate else "(invalid draw)"
        line = describe(
            f"trial {record.number}",
            name,
            record.status,
            record.value,
            record.reason,
            bool(record.cached_from),
        )
        self._report(line, record.status, trial=True)
