"""The evaluation cache, its claims and the backends' state, in an Optuna study's attributes.

Study attributes are what every worker of a study reads and writes, on any storage:
``losslab.eval.<key>`` holds a finished evaluation, ``losslab.state.<backend>.<key>`` a backend's
own values. Claims (the worker training an evaluation now, the worker that took a GP individual)
are atomic, in ``claims.py``; whether a claim's holder is still alive is the store's to say (its
process, or its heartbeat: ``store.py``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from losslab.search.evaluator import CachedEvaluation, EvaluationCache
from losslab.search.ledger import BackendState
from losslab.search.workers import worker_id
from losslab.training import Result

if TYPE_CHECKING:
    from losslab.search.store import OptunaStudyStore

__all__ = ["AttrCache", "AttrState", "claim"]


class AttrCache(EvaluationCache):
    """Evaluations in the study's attributes: shared by every worker and every resume."""

    def __init__(self, store: OptunaStudyStore, poll: float = 0.5):
        self.store, self.study, self.poll = store, store.study, poll

    def get(self, key: str) -> CachedEvaluation | None:
        entry = self.study.user_attrs.get(f"losslab.eval.{key}")
        if entry is None:
            return None
        return CachedEvaluation(Result.from_dict(entry["result"]), entry["run_id"], entry["origin"])

    def put(self, key: str, entry: CachedEvaluation) -> None:
        self.study.set_user_attr(
            f"losslab.eval.{key}",
            {"result": entry.result.to_dict(), "run_id": entry.run_id, "origin": entry.origin},
        )

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
