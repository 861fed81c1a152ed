"""How a study climbs its fidelity ladder: promotions and race seeds as entries of their own.

:class:`LadderRunner` is a part of :class:`~losslab.search.study.Study` (as ``BatchRunner`` is):
before the study asks its backend for a new proposal it asks the ladder (``ladder.py``) for a
job; a job is claimed (so no two workers take it), reserved as an entry within the budget, and
evaluated at its rung's fidelity and seed through the study's batch runner. Racing reads the
top rung's per-case test Dice from the evaluation cache and drops the racers that are
significantly worse than the best contender (``study_verdict.TopRung``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from losslab.search.backend import Proposal, Slot, TrialRecord, replayed
from losslab.search.ladder import Ladder, LadderJob, ladder_jobs
from losslab.search.study_verdict import TopRung

if TYPE_CHECKING:
    from losslab.search.backend import SearchBackend
    from losslab.search.evaluator import Evaluation, Evaluator
    from losslab.search.store.ledger import StudyStore
    from losslab.search.study_batch import BatchRunner
    from losslab.search.study_config import StudyConfig

__all__ = ["LadderHost", "LadderRunner", "ladder_tags"]


class LadderHost(Protocol):
    """What the ladder needs of its study."""

    store: StudyStore
    backend: SearchBackend
    evaluators: list[Evaluator]
    config: StudyConfig
    batches: BatchRunner
    rung_baselines: dict[tuple[int, int], list[Evaluation]]


class LadderRunner:
    """The ladder part of a study (module docstring)."""

    def __init__(self, host: LadderHost):
        self.host = host
        self.state = host.store.state("ladder")

    @property
    def ladder(self) -> Ladder:
        return self.host.config.ladder

    # -- jobs ----------------------------------------------------------------------------------

    def jobs(self, records: Sequence[TrialRecord]) -> list[LadderJob]:
        """The ladder's jobs now, in the order to take them (``ladder.py``), given the
        ledger's ``records``."""
        if self.ladder.plain:
            return []
        return ladder_jobs(
            self.ladder, records, self.host.store.ladder_taken(), self.eliminated(records)
        )

    def run_one(self, budget: int | None) -> bool:
        """Take and run the first job no live worker holds; ``False`` when there is none.
        A queued rerun that the reservation hands back instead is run first."""
        if self.ladder.plain:
            return False
        records = self.host.store.records()
        for job in self.jobs(records):
            if not self.state.claim(job.claim_key):
                continue  # another worker promotes it
            slots = self.host.store.reserve(1)
            if budget is not None:
                slots = self.host.store.within_budget(slots, budget)
            if not slots:
                return True  # the budget is taken: the study loop waits for the others
            slot = slots[0]
            if slot.retry is not None:
                proposal = self.replay(slot) if slot.retry.on_ladder else None
                if proposal is None:  # a backend's own rerun: the backend hears of it
                    (proposal,) = self.host.backend.ask([slot])
                    proposal = replayed(slot, proposal)
                self.host.batches.run([slot], [proposal])
                return True
            self.host.batches.run([slot], [self.proposal(job, records)])
            return True
        return False

    def proposal(self, job: LadderJob, records: Sequence[TrialRecord]) -> Proposal:
        """The job's proposal: its root entry's, again (``SearchBackend.again``)."""
        (root,) = [r for r in records if r.number == job.root]
        again = self.host.backend.again(root)
        return dataclasses.replace(
            again,
            rung=job.rung,
            seed=job.seed,
            root=job.root,
            tags={**again.tags, **ladder_tags(job.rung, job.seed, job.root)},
        )

    def replay(self, slot: Slot) -> Proposal:
        """An interrupted promotion or race seed, as it was (the backend's hooks again)."""
        retry = slot.retry
        record = TrialRecord(
            slot.number,
            retry.candidate,
            "",
            math.nan,
            overrides=dict(retry.overrides),
            params=dict(retry.params),
            variant=dict(retry.variant),
        )
        again = self.host.backend.again(record)
        return dataclasses.replace(
            retry,
            hooks=again.hooks,
            tags={**again.tags, **ladder_tags(retry.rung, retry.seed, retry.root)},
        )

    # -- racing ------------------------------------------------------------------------------

    def top(self) -> TopRung:
        """The top rung as racing and the verdict read it."""
        host = self.host
        return TopRung(
            self.ladder,
            host.evaluators[0].cache,
            list(host.evaluators[0].dataset.class_names),
            host.rung_baselines,
        )

    def eliminated(self, records: Sequence[TrialRecord]) -> set[int]:
        """The roots racing has dropped (none unless the top rung has several seeds)."""
        return self.top().eliminated(records)


def ladder_tags(rung: int, seed: int, root: int | None) -> dict[str, str]:
    """MLflow tags of an evaluation's place on the ladder."""
    tags = {"losslab.rung": str(rung), "losslab.seed_index": str(seed)}
    if root is not None:
        tags["losslab.root"] = str(root)
    return tags
