"""A study's side in MLflow: its parent run, the runs of dead workers, the best run's tag and
name, the parent's description.

Everything goes through :class:`~losslab.tracking.tracker.Tracker`; no MLflow filter is written here.

``best_trial.json`` on the parent run is the best trial's candidate (the keys of
``candidate.json``, so ``losslab train --candidate best_trial.json`` reads it as is) plus
``overrides``, the train settings its trial drew (``{"lr": 0.003}``), ``train``, the whole
train config it trained with (the study's, at its fidelity, with the overrides: ``train.lr``).
``best_candidate.json``, the same file, is written only when no baseline beats the best trial:
a candidate a baseline beats is never called best (the parent run's tag
``losslab.best_trial_beaten_by`` names the baseline).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from losslab import __version__
from losslab.search.backend import TrialRecord
from losslab.search.evaluator import Evaluation
from losslab.search.workers import is_stale
from losslab.tracking.format import BEST_MARK, RUN_NAME_LIMIT, fit_name
from losslab.tracking.tracker import Tracker

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


def _mark_best(tracker: Tracker, parent: str, run_id: str) -> None:
    """Tag ``run_id`` ``losslab.best`` and end its name with `` ★ best``; a run of ``parent``
    marked before loses both."""
    for run in tracker.runs_tagged({"losslab.best": "true"}, parent_run_id=parent):
        if run.run_id != run_id:
            tracker.delete_tag(run.run_id, "losslab.best")
            if run.name.endswith(BEST_MARK):
                tracker.rename_run(run.run_id, run.name[: -len(BEST_MARK)])
    tracker.set_tags(run_id, {"losslab.best": "true"})
    name = tracker.run_name(run_id)
    if not name.endswith(BEST_MARK):
        tracker.rename_run(run_id, fit_name(name, RUN_NAME_LIMIT - len(BEST_MARK)) + BEST_MARK)


def tag_best(
    tracker: Tracker,
    parent: str,
    best: TrialRecord | None,
    step: int,
    beaten_by: Evaluation | None = None,
) -> None:
    """Mark the study's best run: the best trial's, unless the baseline ``beaten_by`` has a
    higher objective (``StudyOutcome.beaten_by``). The best run is tagged ``losslab.best`` and
    its name ends with `` ★ best`` (a run marked before loses both); the parent run gets the
    best objective and ``best_trial.json`` (the best trial's candidate with its
    ``overrides``). ``best_candidate.json`` is written only when
    the best trial is the study's best: a trial a baseline beats is never called best (its run
    gets the tag ``losslab.beaten_by``, the parent ``losslab.best_trial_beaten_by``)."""
    if best is None or not best.run_id:
        return
    winner = beaten_by.run_id if beaten_by is not None and beaten_by.run_id else best.run_id
    _mark_best(tracker, parent, winner)
    tags = {"losslab.best_run_id": winner, "losslab.best_trial": str(best.number)}
    if beaten_by is not None:
        tags["losslab.best_candidate"] = beaten_by.candidate.name
        tags["losslab.best_role"] = "baseline"
        tags["losslab.best_trial_beaten_by"] = beaten_by.candidate.name
        tracker.set_tags(best.run_id, {"losslab.beaten_by": beaten_by.candidate.name})
        tracker.log_metrics(
            parent, {"best_objective": beaten_by.value, "best_trial_objective": best.value}, step
        )
    else:
        tags["losslab.best_candidate"] = best.candidate.name if best.candidate else ""
        tags["losslab.best_role"] = "trial"
        tracker.delete_tag(parent, "losslab.best_trial_beaten_by")
        tracker.log_metrics(
            parent, {"best_objective": best.value, "best_trial_objective": best.value}, step
        )
    tracker.set_tags(parent, tags)
    if best.candidate is not None:
        tracker.log_text(parent, _best_json(best), "best_trial.json")
        if beaten_by is None:
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
        beaten_by = outcome.beaten_by()
        tracker.log_text(parent, _best_json(best[0], train), "best_trial.json")
        if beaten_by is None:
            tracker.log_text(parent, _best_json(best[0], train), "best_candidate.json")
