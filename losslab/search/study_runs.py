"""A study's side in MLflow: its parent run, the runs of dead workers, the best run's tag.

Everything goes through :class:`~losslab.tracking.Tracker`; no MLflow filter is written here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from losslab import __version__
from losslab.search.ledger import TrialRecord
from losslab.search.workers import is_stale
from losslab.tracking import Tracker

__all__ = ["close_stale_runs", "parent_run", "tag_best"]


def _parents(tracker: Tracker, name: str) -> list:
    runs = tracker.runs_tagged({"losslab.study": name, "losslab.role": "study"})
    return sorted(runs, key=lambda r: (r.start_time, r.run_id))


def parent_run(
    tracker: Tracker, name: str, *, tags: Mapping[str, str], params: Mapping[str, Any], source: str
) -> str:
    """The study's parent run: the existing one (reopened), else a new one with ``params`` and
    the study file. Workers that start together may each create one; all then keep the oldest
    and delete their own."""
    found = _parents(tracker, name)
    if found:
        tracker.reopen_run(found[0].run_id)
        return found[0].run_id
    run_id = tracker.start_run(name, tags={"losslab.study": name, "losslab.role": "study", **tags})
    oldest = _parents(tracker, name)[0].run_id
    if oldest != run_id:
        tracker.delete_run(run_id)
        tracker.reopen_run(oldest)
        return oldest
    tracker.log_params(run_id, {**params, "losslab.version": __version__})
    tracker.log_text(run_id, source, "study.yaml")
    return run_id


def close_stale_runs(tracker: Tracker, parent: str, reclaimed_run_ids: Sequence[str]) -> None:
    """Mark runs of dead workers (or of reclaimed entries) KILLED, status ``interrupted``."""
    for run in tracker.runs_tagged({}, parent_run_id=parent, status="RUNNING"):
        if run.run_id in reclaimed_run_ids or is_stale(run.tags.get("losslab.worker", ""), None):
            tracker.set_tags(run.run_id, {"status": "interrupted"})
            tracker.end_run(run.run_id, "KILLED")


def tag_best(tracker: Tracker, parent: str, best: TrialRecord | None, step: int) -> None:
    """Tag the best entry's run ``losslab.best`` (and only it); log the best objective and the
    best candidate on the parent run."""
    if best is None or not best.run_id:
        return
    for run in tracker.runs_tagged({"losslab.best": "true"}, parent_run_id=parent):
        if run.run_id != best.run_id:
            tracker.delete_tag(run.run_id, "losslab.best")
    tracker.set_tags(best.run_id, {"losslab.best": "true"})
    tracker.set_tags(
        parent,
        {
            "losslab.best_run_id": best.run_id,
            "losslab.best_trial": str(best.number),
            "losslab.best_candidate": best.candidate.name if best.candidate else "",
        },
    )
    tracker.log_metrics(parent, {"best_objective": best.value}, step=step)
    if best.candidate is not None:
        tracker.log_text(parent, best.candidate.to_json(), "best_candidate.json")
