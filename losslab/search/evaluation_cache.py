"""The evaluation cache's interface: results by evaluation key (see ``evaluator.py``).

:class:`MemoryCache` lives as long as the process; the study store's cache (``store/cache.py``)
is shared by every worker and resume of a study.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from losslab.training import Result

__all__ = ["CachedEvaluation", "EvaluationCache", "MemoryCache"]


@dataclass(frozen=True)
class CachedEvaluation:
    """What a cache holds for one key."""

    result: Result
    run_id: str | None = None
    origin: str = ""  # who evaluated it first, e.g. "trial 3" or "baseline dice"


class EvaluationCache(ABC):
    """Maps evaluation keys to results."""

    @abstractmethod
    def get(self, key: str) -> CachedEvaluation | None: ...

    @abstractmethod
    def put(self, key: str, entry: CachedEvaluation) -> None: ...

    def claim(self, key: str) -> bool:
        """Reserve ``key`` before training it; ``False`` when another live worker trains it now."""
        return True

    def wait(self, key: str) -> CachedEvaluation | None:
        """After a lost :meth:`claim`: the other worker's result, or ``None`` once this worker
        holds the claim (the other died and this one took the claim over: train it here)."""
        return None


class MemoryCache(EvaluationCache):
    """A dict: lives as long as the process."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedEvaluation] = {}

    def get(self, key: str) -> CachedEvaluation | None:
        return self._entries.get(key)

    def put(self, key: str, entry: CachedEvaluation) -> None:
        self._entries[key] = entry

    def __len__(self) -> int:
        return len(self._entries)
