"""The evaluation cache, its claims and the backends' state, shared by every worker of a study.

A finished evaluation is kept under its key in losslab's own results store beside the Optuna
storage (``results_table.py``: a table ``losslab_results`` in the study's database, or one JSON
file per key beside a journal file), out of the study's attributes. A study made before that
kept them as study attributes ``losslab.eval.<key>``: a get still finds those (a resumed study
never trains again), but nothing is written there any more. A backend's own values are study
attributes ``losslab.state.<backend>.<key>``. Claims (the worker training an evaluation now, the
worker that took a GP individual) are atomic, in ``claims.py``; whether a claim's holder is
still alive is the store's to say (its process, or its heartbeat: ``store.py``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from losslab.search.backend import BackendState
from losslab.search.evaluator import CachedEvaluation, EvaluationCache
from losslab.search.workers import worker_id
from losslab.training import Result

if TYPE_CHECKING:
    from losslab.search.store.optuna_store import OptunaStudyStore

__all__ = ["LEGACY", "AttrCache", "AttrState", "ResultsCache", "claim"]

LEGACY = "losslab.eval."  # + key: where a study made before the results store kept a result


class ResultsCache(EvaluationCache):
    """Evaluations in the store's results (module docstring): shared by every worker and every
    resume. Cheap to make: the results store itself is made once, as the study store opens."""

    def __init__(self, store: OptunaStudyStore, poll: float = 0.5):
        self.store, self.study, self.poll = store, store.study, poll
        self.results = store.results

    def get(self, key: str) -> CachedEvaluation | None:
        entry = self.results.get(key) if self.results is not None else None
        if entry is None:  # a study made before the results store
            entry = self.study.user_attrs.get(LEGACY + key)
        if entry is None:
            return None
        return CachedEvaluation(Result.from_dict(entry["result"]), entry["run_id"], entry["origin"])

    def put(self, key: str, entry: CachedEvaluation) -> None:
        body = {"result": entry.result.to_dict(), "run_id": entry.run_id, "origin": entry.origin}
        self.results.put(key, body)

    def claim(self, key: str) -> bool:
        """Claim ``losslab.claim.<key>``: of workers claiming at once, one trains and the
        others wait for its result (see :func:`claim`)."""
        return claim(self.store, f"losslab.claim.{key}")

    def wait(self, key: str) -> CachedEvaluation | None:
        name = f"losslab.claim.{key}"
        while True:
            hit = self.get(key)
            if hit is not None:
                return hit
            holder = self.store.claims.holder(name) or ""
            if holder == worker_id():
                return None
            if self.store.holder_stale(holder, self.study.user_attrs) and self.claim(key):
                return None  # the other worker died and this one took its claim: train it here
            time.sleep(self.poll)  # alive, or another waiting worker took the claim over


AttrCache = ResultsCache  # its name when results were study attributes


class AttrState(BackendState):
    """A backend's values and claims under ``losslab.state.<backend>.``."""

    def __init__(self, store: OptunaStudyStore, namespace: str):
        self.store, self.study = store, store.study
        self.prefix = f"losslab.state.{namespace}."

    def get(self, key: str, default: Any = None) -> Any:
        return self.study.user_attrs.get(self.prefix + key, default)

    def put(self, key: str, value: Any) -> None:
        self.study.set_user_attr(self.prefix + key, value)

    def claim(self, key: str) -> bool:
        return claim(self.store, f"{self.prefix}claim.{key}")

    def taken(self, key: str) -> bool:
        holder = self.store.claims.holder(f"{self.prefix}claim.{key}")
        if not holder or holder == worker_id():
            return False
        return not self.store.holder_stale(holder, self.study.user_attrs)


def claim(store: OptunaStudyStore, name: str) -> bool:
    """Claim ``name`` for this worker, atomically (``claims.py``): ``False`` when another live
    worker holds it."""
    study = store.study
    return store.claims.acquire(
        name, worker_id(), lambda h: store.holder_stale(h, study.user_attrs)
    )
