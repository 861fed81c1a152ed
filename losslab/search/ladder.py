"""The fidelity ladder: successive-halving rungs for every backend, racing over seeds at the top.

A study's ``fidelity:`` is one fidelity (one rung, as it always was) or a ladder::

    fidelity:
      rungs: [{epochs: 4}, {epochs: 12}, {epochs: 30, seeds: 3}]
      keep: 0.34

Every proposal of every backend is evaluated at rung 0. The promotion rule is ASHA's
(Li et al., MLSys 2020), asynchronous: whenever a worker needs work it looks, from the top rung
down, for a job, and takes the first:

1. **a race seed** (top rung, ``seeds > 1``): a racer (an entry evaluated at the top rung with
   seed 0 that racing has not eliminated) with fewer than ``seeds`` seeds gets its next seed; the
   racer with the fewest seeds first, then the best;
2. **a promotion** from rung ``k`` to ``k + 1`` (highest ``k`` first): of the ``n_k`` entries
   finished at rung ``k``, the best ``floor(keep * n_k)`` (failed and pruned ones rank last, ties
   by entry number) are promotable; the best of them not yet at rung ``k + 1`` is promoted;
3. otherwise a new proposal of the backend, at rung 0.

So no worker waits for a rung to fill, and a promotion decided early (on the first ``n_k``
entries) is never taken back. Racing (F-race; Birattari et al., GECCO 2002) drops a racer whose
per-(seed, test case) Dice is significantly below the best contender's (racers and the study's
baselines, paired Wilcoxon test, Holm across racers; ``verdict.race_losers``): it gets no more
seeds.

Every rung evaluation is an evaluation of its own (its fidelity and seed are in its key) and an
entry of its own in the ledger, so the budget counts **evaluations across rungs** (a promotion
or a race seed takes one entry of ``budget.trials``), ``budget.minutes`` stops whatever runs when
it ends, and resume, claims and workers hold per rung as for any entry. A ladder position is
``(rung, root, seed)``: ``root`` is the number of the rung-0 entry of the proposal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from losslab.search.backend import TrialRecord
from losslab.search.fidelity import Fidelity

__all__ = ["Ladder", "LadderJob", "Rung", "ladder_jobs"]

_RUNG_KEYS = ("seeds",)


@dataclass(frozen=True)
class Rung:
    """One rung: a fidelity, and at the top how many seeds racers get."""

    fidelity: Fidelity
    seeds: int = 1

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.fidelity.to_dict().items() if v is not None}
        if self.seeds != 1:
            data["seeds"] = self.seeds
        return data

    def describe(self) -> str:
        seeds = f", {self.seeds} seeds" if self.seeds != 1 else ""
        return self.fidelity.describe() + seeds


@dataclass(frozen=True)
class Ladder:
    """The rungs of a study's fidelity (one rung: a plain fidelity) and the share promoted."""

    rungs: tuple[Rung, ...]
    keep: float = 1 / 3

    def __post_init__(self) -> None:
        if not self.rungs:
            raise ValueError("fidelity.rungs: give at least one rung")
        if not 0.0 < self.keep < 1.0 or isinstance(self.keep, bool):
            raise ValueError(f"fidelity.keep: {self.keep!r} must be a share between 0 and 1")
        for index, rung in enumerate(self.rungs[:-1]):
            if rung.seeds != 1:
                raise ValueError(
                    f"fidelity.rungs[{index}].seeds: only the top rung races over seeds"
                )

    @classmethod
    def single(cls, fidelity: Fidelity) -> Ladder:
        return cls((Rung(fidelity),))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "fidelity") -> Ladder:
        """A ladder from ``{rungs: [...], keep: ...}``; errors name the key at fault."""
        unknown = sorted(set(raw) - {"rungs", "keep"})
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown key beside rungs (known: keep)")
        rungs_raw = raw.get("rungs")
        if not isinstance(rungs_raw, list) or not rungs_raw:
            raise ValueError(f"{where}.rungs: a list of fidelities, got {rungs_raw!r}")
        rungs = []
        for index, item in enumerate(rungs_raw):
            at = f"{where}.rungs[{index}]"
            if not isinstance(item, Mapping):
                raise ValueError(f"{at}: a fidelity mapping such as {{epochs: 4}}, got {item!r}")
            seeds = item.get("seeds", 1)
            if type(seeds) is not int or not 1 <= seeds <= 100:
                raise ValueError(f"{at}.seeds: {seeds!r} must be an integer from 1 to 100")
            fidelity_raw = {k: v for k, v in item.items() if k not in _RUNG_KEYS}
            try:
                fidelity = Fidelity.from_dict(fidelity_raw)
            except ValueError as exc:
                raise ValueError(f"{at}: {exc}") from None
            rungs.append(Rung(fidelity, seeds))
        keep = raw.get("keep", 1 / 3)
        if type(keep) not in (int, float):
            raise ValueError(f"{where}.keep: {keep!r} must be a number between 0 and 1")
        try:
            return cls(tuple(rungs), float(keep))
        except ValueError as exc:
            message = str(exc).replace("fidelity.", f"{where}.", 1)
            raise ValueError(message) from None

    @property
    def top(self) -> int:
        return len(self.rungs) - 1

    @property
    def seeds(self) -> int:
        """Seeds of the top rung (racing)."""
        return self.rungs[-1].seeds

    @property
    def plain(self) -> bool:
        """One rung, one seed: a study as before ladders."""
        return len(self.rungs) == 1 and self.seeds == 1

    def to_dict(self) -> dict[str, Any]:
        return {"rungs": [r.to_dict() for r in self.rungs], "keep": self.keep}

    def describe(self) -> str:
        if len(self.rungs) == 1:
            return self.rungs[0].describe()
        steps = " -> ".join(f"[{r.describe()}]" for r in self.rungs)
        return f"{steps}, keep {self.keep:.2g}"


@dataclass(frozen=True)
class LadderJob:
    """An evaluation the ladder asks for: ``root``'s proposal at ``rung`` with seed ``seed``
    (an index: the study's seed plus ``seed``)."""

    rung: int
    root: int
    seed: int = 0

    @property
    def claim_key(self) -> str:
        return f"ladder:{self.rung}:{self.root}:{self.seed}"

    def to_dict(self) -> dict[str, int]:
        return {"rung": self.rung, "root": self.root, "seed": self.seed}


def _score(record: TrialRecord) -> float:
    """How an entry ranks within its rung: its objective; failed, pruned or NaN last."""
    if record.status != "ok" or math.isnan(record.value):
        return -math.inf
    return record.value


def root_of(record: TrialRecord) -> int:
    return record.number if record.root is None else record.root


def rung_table(records: Iterable[TrialRecord]) -> dict[int, dict[int, dict[int, TrialRecord]]]:
    """``table[rung][root][seed]`` = the finished entry at that ladder position."""
    table: dict[int, dict[int, dict[int, TrialRecord]]] = {}
    for record in records:
        table.setdefault(record.rung, {}).setdefault(root_of(record), {})[record.seed] = record
    return table


def promotable(ladder: Ladder, rung: dict[int, dict[int, TrialRecord]]) -> list[int]:
    """The roots among the best ``floor(keep * n)`` of a rung's seed-0 entries, best first."""
    finished = [(root, seeds[0]) for root, seeds in rung.items() if 0 in seeds]
    ranked = sorted(finished, key=lambda item: (-_score(item[1]), item[0]))
    count = math.floor(ladder.keep * len(ranked) + 1e-9)
    return [root for root, record in ranked[:count] if _score(record) > -math.inf]


def ladder_jobs(
    ladder: Ladder,
    records: Sequence[TrialRecord],
    taken: Iterable[tuple[int, int, int]] = (),
    eliminated: Iterable[int] = (),
) -> list[LadderJob]:
    """The jobs the ladder has now, in the order a worker should take them (module
    docstring). ``taken``: positions ``(rung, root, seed)`` some entry holds already
    (running, queued, or owed a rerun); ``eliminated``: roots racing has dropped."""
    if ladder.plain:
        return []
    table = rung_table(records)
    held = set(taken) | {
        (rung, root, seed)
        for rung, roots in table.items()
        for root, s in roots.items()
        for seed in s
    }
    jobs: list[LadderJob] = []
    top, dropped = ladder.top, set(eliminated)
    racers = [
        (root, seeds)
        for root, seeds in table.get(top, {}).items()
        if 0 in seeds and _score(seeds[0]) > -math.inf and root not in dropped
    ]
    for root, _ in sorted(racers, key=lambda item: (len(item[1]), -_mean_score(item[1]), item[0])):
        for seed in range(1, ladder.seeds):
            if (top, root, seed) not in held:
                jobs.append(LadderJob(top, root, seed))
                break
    for rung in range(top - 1, -1, -1):
        for root in promotable(ladder, table.get(rung, {})):
            if (rung + 1, root, 0) not in held:
                jobs.append(LadderJob(rung + 1, root, 0))
    return jobs


def _mean_score(seeds: Mapping[int, TrialRecord]) -> float:
    values = [_score(r) for r in seeds.values()]
    return sum(values) / len(values) if values else -math.inf
