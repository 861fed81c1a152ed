"""``backend: greedy``: each start trained plain, trained under the greedy controller, and its
learned parameter trajectory replayed as a fixed schedule.

For every start of the study (an option of ``space.loss`` with fixed values) the backend
proposes three evaluations, recorded as trials and tagged ``greedy.start`` / ``greedy.role``:

- ``start``: the loss as it is (the reference a greedy run must beat);
- ``greedy``: the same candidate with a :class:`GreedyController` on the trainer; its plan is
  the evaluation's *variant* (part of its key), so it never shares the plain run's cache entry;
- ``replay``: the candidate with the controlled run's trajectory as a ``piecewise`` parameter
  schedule, no controller: the learned schedule at a plain run's cost. At the study's seed it
  reproduces the controlled run (the look-ahead leaves no trace); ``losslab compare`` takes it to
  other seeds.

The starts' plain and controlled runs form the first batch; the replays, which need the
controlled runs' trajectories, the second. What was issued and the trajectories live in the
backend's state in the study store, so a resumed study or another worker goes on from there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from losslab.candidate import ScheduleSpec
from losslab.search.backend import BackendContext, Proposal, SearchBackend, Slot, TrialRecord
from losslab.search.greedy.controller import GreedyController
from losslab.search.greedy.settings import (
    GreedySettings,
    check_every,
    check_plans,
    check_settings,
    plan_for,
    starts_of,
)
from losslab.search.space import SearchSpace
from losslab.training import Result, TrainConfig

__all__ = ["GreedyBackend"]

ROLES = ("start", "greedy", "replay")
ISSUED, SCHEDULES = "issued", "schedules"


class GreedyBackend(SearchBackend):
    """The greedy backend (see the module docstring)."""

    name = "greedy"

    @classmethod
    def check_settings(cls, raw: Mapping[str, Any], *, epochs: int) -> GreedySettings:
        return check_settings(raw)

    @classmethod
    def check_space(cls, space: SearchSpace) -> None:
        starts_of(space)

    @classmethod
    def check_fit(cls, space: SearchSpace, settings: GreedySettings) -> None:
        check_plans(space, settings)

    @classmethod
    def check_run(cls, settings: GreedySettings, train: TrainConfig) -> None:
        check_every(settings, train)

    def __init__(self, context: BackendContext):
        super().__init__(context)
        self.starts = starts_of(context.space)
        self.plans = [plan_for(label, c, context.settings) for label, c in self.starts]
        self.state = context.state

    # -- the jobs -----------------------------------------------------------------------------

    def _issued(self) -> list[str]:
        return list(self.state.get(ISSUED, []))

    def _schedules(self) -> dict[str, Any]:
        return dict(self.state.get(SCHEDULES, {}))

    def _available(self) -> list[str]:
        """Jobs (``"<role>:<start index>"``) that can be proposed now, in order."""
        issued = set(self._issued())
        told = self._schedules()
        jobs = [f"{role}:{i}" for i in range(len(self.starts)) for role in ("start", "greedy")]
        jobs += [f"replay:{i}" for i in range(len(self.starts)) if str(i) in told]
        return [job for job in jobs if job not in issued]

    def _outstanding(self) -> list[str]:
        """Jobs issued but not in the ledger yet: interrupted (the store hands them back as
        retries) or running on another worker."""
        done = {_job_of(r.params) for r in self.context.records()}
        return [job for job in self._issued() if job not in done]

    def batch_size(self) -> int:
        """The jobs that can be proposed now; when none, the outstanding ones (so that the
        interrupted come back before the study ends)."""
        return len(self._available()) or len(self._outstanding())

    def ask(self, slots: Sequence[Slot]) -> list[Proposal]:
        available, issued = self._available(), self._issued()
        proposals = []
        for slot in slots:
            if slot.retry is not None:  # the loop re-runs the retry; the hooks come from here
                proposals.append(self._proposal(_job_of(slot.retry.params)))
                continue
            if available:
                job = available.pop(0)
                issued.append(job)
                self.state.put(ISSUED, issued)
            else:  # running elsewhere: the evaluation cache waits for it, nothing trains twice
                outstanding = self._outstanding()
                job = outstanding[0] if outstanding else "start:0"
            proposals.append(self._proposal(job))
        return proposals

    def _proposal(self, job: str) -> Proposal:
        role, _, index_text = job.partition(":")
        if role not in ROLES or not index_text.isdigit() or int(index_text) >= len(self.starts):
            return Proposal(None, invalid=f"greedy: an unknown job {job!r} in the ledger")
        index = int(index_text)
        label, start = self.starts[index]
        plan = self.plans[index]
        params = {"greedy.start": label, "greedy.role": role, "index": index}
        tags = {"greedy.start": label, "greedy.role": role}
        if role == "start":
            return Proposal(start, params=params, tags=tags)
        if role == "greedy":
            controller = GreedyController(
                plan, self.context.objective, batched=self.context.settings.batched_lookahead
            )
            return Proposal(
                replace(start, name=f"{label} /G"),
                params=params,
                hooks=[controller],
                tags={**tags, "greedy.mode": plan.mode},
                variant={"greedy": plan.to_dict()},
            )
        told = self._schedules().get(str(index))
        if not told or told.get("schedule") is None:
            why = (told or {}).get("why", "the greedy run has not finished")
            return Proposal(None, params=params, invalid=f"no schedule to replay: {why}")
        candidate = replace(
            start,
            name=f"{label} /G replay",
            param_schedule=ScheduleSpec.of("piecewise", **told["schedule"]),
        )
        return Proposal(candidate, params=params, tags=tags)

    def again(self, record: TrialRecord) -> Proposal:
        """A promotion or race seed of a greedy run steers it again (the controller's hooks)."""
        return self._proposal(_job_of(record.params))

    # -- the outcomes -------------------------------------------------------------------------

    def tell(
        self, slot: Slot, proposal: Proposal, record: TrialRecord, result: Result | None
    ) -> None:
        if proposal.params.get("greedy.role") != "greedy":
            return
        index = str(proposal.params["index"])
        told = self._schedules()
        told[index] = _schedule_of(result, self.plans[int(index)].every)
        self.state.put(SCHEDULES, told)
        schedule = told[index]["schedule"]
        if schedule is not None:
            label = self.starts[int(index)][0]
            final = {a: round(v[-1], 6) for a, v in schedule["values"].items()}
            self.context.log(
                {f"greedy/{label}/changes": len(schedule["steps"])},
                step=record.number,
                tags={f"greedy.{label}.final": json.dumps(final)},
            )


def _job_of(params: Mapping[str, Any]) -> str:
    """The job (``"<role>:<start index>"``) of a proposal or ledger entry's params."""
    return f"{params.get('greedy.role')}:{params.get('index')}"


def _schedule_of(result: Result | None, every: int) -> dict[str, Any]:
    """What a controlled run leaves to replay: its schedule, or why there is none."""
    if result is None or result.status != "ok":
        reason = "no result" if result is None else f"{result.status}: {result.reason}"
        return {"schedule": None, "why": f"the greedy run did not finish ({reason})"}
    text = result.artifacts.get("greedy_trajectory.json")
    if text is None:
        return {"schedule": None, "why": "the greedy run left no trajectory"}
    schedule = json.loads(text).get("schedule")
    if schedule is None:
        return {
            "schedule": None,
            "why": f"the greedy run made no decision (every={every} steps is longer than its run)",
        }
    return {"schedule": schedule, "why": ""}
