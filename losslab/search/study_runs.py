"""A study's side in MLflow: its parent run, the runs of dead workers, the best run's tag and
name, the parent's description.

Everything goes through :class:`~losslab.tracking.Tracker`; no MLflow filter is written here.

``best_candidate.json`` on the parent run is the best trial's candidate (the keys of
``candidate.json``, so ``losslab train --candidate best_candidate.json`` reads it as is) plus
``overrides``, the train settings its trial drew (``{"lr": 0.003}``), and ``train``, the whole
train config it trained with (the study's, at its fidelity, with the overrides: ``train.lr``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from losslab import __version__
from losslab.search.ledger import TrialRecord
from losslab.search.workers import is_stale
from losslab.tracking import Tracker
from losslab.tracking_format import BEST_MARK, RUN_NAME_LIMIT, fit_name

if TYPE_CHECKING:
    from losslab.search.study_outcome import StudyOutcome

__all__ = ["close_stale_runs", "describe_study", "parent_run", "tag_best"]

NOTE = "mlflow.note.content"  # the tag MLflow shows as a run's description (markdown)


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


def _best_json(best: TrialRecord, train: Mapping[str, Any] | None = None) -> str:
    data = {**best.candidate.to_dict(), "overrides": dict(best.overrides)}
    if train is not None:
        data["train"] = dict(train)
    return json.dumps(data, indent=2, sort_keys=True, default=list)


def tag_best(tracker: Tracker, parent: str, best: TrialRecord | None, step: int) -> None:
    """Tag the best entry's run ``losslab.best`` and end its name with `` ★ best`` (and only
    it: a run that was best before loses both); log the best objective and the best candidate
    (with its trial's ``overrides``) on the parent run."""
    if best is None or not best.run_id:
        return
    for run in tracker.runs_tagged({"losslab.best": "true"}, parent_run_id=parent):
        if run.run_id != best.run_id:
            tracker.delete_tag(run.run_id, "losslab.best")
            if run.name.endswith(BEST_MARK):
                tracker.rename_run(run.run_id, run.name[: -len(BEST_MARK)])
    tracker.set_tags(best.run_id, {"losslab.best": "true"})
    name = tracker.run_name(best.run_id)
    if not name.endswith(BEST_MARK):
        tracker.rename_run(best.run_id, fit_name(name, RUN_NAME_LIMIT - len(BEST_MARK)) + BEST_MARK)
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
        tracker.log_text(parent, _best_json(best), "best_candidate.json")


def _train_of(outcome: StudyOutcome, overrides: Mapping[str, Any]) -> dict[str, Any] | None:
    """The train config an evaluation of the study with ``overrides`` ran with."""
    config = outcome.config
    try:
        train = dataclasses.replace(
            config.fidelity.apply(config.train), **dict(overrides), seed=config.seed
        )
    except (TypeError, ValueError):
        return None
    return train.to_dict()


def describe_study(outcome: StudyOutcome) -> None:
    """At the study's close: the parent run's description (``mlflow.note.content``, markdown:
    the study, its backend, objective, fidelity, data and budget used, and the table of the
    best trials and the baselines), and ``best_candidate.json`` with its train config."""
    from losslab.search.summary import markdown_summary

    tracker, parent = outcome.tracker, outcome.parent_run_id
    tracker.set_tags(parent, {NOTE: markdown_summary(outcome)})
    best = outcome.best(1)
    if best and best[0].run_id and best[0].candidate is not None:
        train = _train_of(outcome, best[0].overrides)
        tracker.log_text(parent, _best_json(best[0], train), "best_candidate.json")
