"""The evaluation cache, its claims and the backends' state, in an Optuna study's attributes.

Study attributes are what every worker of a study reads and writes, on any storage:
``losslab.eval.<key>`` holds a finished evaluation, ``losslab.claim.<key>`` the worker training
it now, ``losslab.state.<backend>.<key>`` a backend's own values. Whether a claim's holder is
still alive is the store's to say (its process, or its heartbeat: ``store.py``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import optuna

from losslab.search.evaluator import CachedEvaluation, EvaluationCache
from losslab.search.ledger import BackendState
from losslab.search.workers import worker_id
from losslab.training import Result

if TYPE_CHECKING:
    from losslab.search.store import OptunaStudyStore

__all__ = ["AttrCache", "AttrState"]


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
        """Write ``losslab.claim.<key>`` = this worker and read it back: of workers claiming at
        once, the last writer trains and the others wait for its result. When other workers are
        alive, the read waits ``settle`` seconds, longer than a write takes, so that two workers
        that both wrote read the same last writer."""
        name, me = f"losslab.claim.{key}", worker_id()
        attrs = self.study.user_attrs
        holder = attrs.get(name)
        if holder and holder != me and not self.store.holder_stale(holder, attrs):
            return False
        self.study.set_user_attr(name, me)
        if self.store.others_alive(attrs):
            time.sleep(self.store.settle)
        return self.study.user_attrs.get(name) == me

    def wait(self, key: str) -> CachedEvaluation | None:
        name = f"losslab.claim.{key}"
        while True:
            hit = self.get(key)
            if hit is not None:
                return hit
            attrs = self.study.user_attrs
            holder = attrs.get(name, "")
            if holder == worker_id() or self.store.holder_stale(holder, attrs):
                return None  # the other worker died (or gave the key back): train it here
            time.sleep(self.poll)


class AttrState(BackendState):
    def __init__(self, study: optuna.Study, namespace: str):
        self.study, self.prefix = study, f"losslab.state.{namespace}."

    def get(self, key: str, default: Any = None) -> Any:
        return self.study.user_attrs.get(self.prefix + key, default)

    def put(self, key: str, value: Any) -> None:
        self.study.set_user_attr(self.prefix + key, value)
