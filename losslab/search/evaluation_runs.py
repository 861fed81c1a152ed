"""An evaluation's MLflow run, from its start to its end, through kills and reruns.

- :class:`LinkedMLflowHook` reports its run id as soon as the run exists (before its parameters
  and files), so the ledger links the run to its entry before training starts.
- :class:`CacheHook` caches the result as soon as the evaluation ends, before its MLflow run is
  ended: a worker killed in between leaves a result that the study finds again, not one that it
  must train again.
- :func:`finish_run`: such a kill leaves the cached result's run unfinished (closed as KILLED
  with ``status=interrupted`` by the next invocation, or still RUNNING in a dead worker's name),
  without final metrics or plots. The evaluation that finds the result in the cache writes them
  to that run and ends it as the result says (FINISHED, FAILED, or KILLED for ``pruned``), so
  MLflow agrees with the ledger.
- :func:`supersede_interrupted`: once an evaluation has its result, the runs of its interrupted
  attempts (same ``losslab.eval_key``, ``status=interrupted``) are tagged
  ``losslab.superseded_by=<run id of the result>`` and deleted the way MLflow deletes (hidden
  from the default view, listed under its "Deleted" runs, restorable until ``mlflow gc``), so
  the default view shows one run per evaluation. An interrupted run that nothing has replaced
  yet stays in view.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from losslab.search.evaluation_cache import CachedEvaluation
from losslab.search.workers import is_stale
from losslab.tracking.hook import MLflowHook
from losslab.tracking.tracker import Tracker
from losslab.training import Hook, Result

if TYPE_CHECKING:
    from losslab.data import SegmentationDataset
    from losslab.search.evaluator import Evaluator

__all__ = [
    "FINAL_STATUSES",
    "SUPERSEDED_BY",
    "CacheHook",
    "LinkedMLflowHook",
    "finish_cached",
    "finish_run",
    "supersede_interrupted",
]

SUPERSEDED_BY = "losslab.superseded_by"
FINAL_STATUSES = ("ok", "failed", "pruned")  # the ``status`` tag of a run that has its result


class LinkedMLflowHook(MLflowHook):
    """An MLflow hook that reports its run id as soon as the run exists, before its parameters
    and files are logged (a worker killed meanwhile leaves a run its entry links)."""

    on_run: Callable[[str], None] | None = None

    def created(self, run_id: str) -> None:
        if self.on_run is not None:
            self.on_run(run_id)


class CacheHook(Hook):
    """Caches an evaluation's result as soon as it ends (so that population members that ended
    before an interruption are kept), before its MLflow run is ended (see the module
    docstring); then the runs of its interrupted attempts are superseded."""

    population_safe = True
    done = False

    def __init__(self, evaluator: Evaluator, key: str, mlflow_hook: MLflowHook | None, origin: str):
        self.evaluator, self.key, self.mlflow_hook = evaluator, key, mlflow_hook
        self.origin = origin
        self.run_id: str | None = None

    def on_train_end(self, state: Any, result: Result) -> None:
        self.done = True
        if result.status == "interrupted":
            return
        self.evaluator.trained += 1
        if self.mlflow_hook is not None:
            self.run_id = self.mlflow_hook.start_run()  # the run of a set-up failure starts here
        if result.status in FINAL_STATUSES:
            self.evaluator.cache.put(self.key, CachedEvaluation(result, self.run_id, self.origin))
            if self.mlflow_hook is not None and self.run_id is not None:
                supersede_interrupted(self.mlflow_hook.tracker, self.key, self.run_id)


def _unfinished(tracker: Tracker, run_id: str) -> bool:
    """Whether ``run_id`` lacks its result: closed as interrupted, or RUNNING in a dead worker
    (a live worker may be ending it right now: left alone)."""
    run = tracker.run(run_id)
    if run is None or run.tags.get("status") in FINAL_STATUSES:
        return False
    return run.status != "RUNNING" or is_stale(run.tags.get("losslab.worker", ""), None)


def finish_run(hook: MLflowHook, result: Result, dataset: SegmentationDataset) -> bool:
    """Write a cached ``result`` to the run ``hook.run_id`` and end it, when a kill left that
    run without its result (module docstring); ``True`` when it did."""
    if hook.run_id is None or not _unfinished(hook.tracker, hook.run_id):
        return False
    with contextlib.suppress(Exception):  # the table goes without its voxel share
        hook.shares = [math.nan, *dataset.foreground_shares()]
    hook.on_train_end(None, result)
    return True


def supersede_interrupted(tracker: Tracker, key: str, keep: str) -> list[str]:
    """Tag and delete the interrupted runs of the evaluation ``key`` other than ``keep`` (the
    run that holds its result); returns their ids."""
    done = []
    for run in tracker.runs_tagged({"losslab.eval_key": key, "status": "interrupted"}):
        if run.run_id != keep and run.status != "RUNNING":
            tracker.set_tags(run.run_id, {SUPERSEDED_BY: keep})
            tracker.delete_run(run.run_id)
            done.append(run.run_id)
    return done


def finish_cached(
    evaluator: Evaluator, hook: MLflowHook | None, key: str, hit: CachedEvaluation
) -> None:
    """A cache hit's side in MLflow: its run finished if a kill left it unfinished, and its
    interrupted attempts superseded."""
    if hook is None or hit.run_id is None:
        return
    hook.run_id = hit.run_id
    finish_run(hook, hit.result, evaluator.dataset)
    supersede_interrupted(hook.tracker, key, hit.run_id)
