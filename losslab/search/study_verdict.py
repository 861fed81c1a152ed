"""What a study's top rung says: which racers racing drops, and the study's one verdict.

:class:`TopRung` reads the top rung of the fidelity ladder (every entry of a one-rung study) from
the evaluation cache: each entry's per-case test Dice over the seeds it has, and the baselines'
at that rung. Racing drops the racers significantly worse than the best contender
(``verdict.race_losers``). The verdict's winner is chosen among the racers racing kept (all of
them when it dropped every one), by the most seeds and then the study's own objective
(validation, the mean over its seeds), never by the test split; it is then tested against every
baseline at the top rung over their shared (seed, test case) pairs of foreground mean Dice
(``verdict.decide``: the paired test and Holm correction of ``losslab compare``). The sentence is
printed, written on the study's MLflow parent run (tags ``losslab.verdict``,
``losslab.verdict.outcome``, the description, ``verdict.json``) and shown by ``losslab report``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from losslab.search.backend import TrialRecord
from losslab.search.ladder import Ladder, root_of, rung_table
from losslab.search.verdict import Contender, Verdict, decide, race_losers

if TYPE_CHECKING:
    from losslab.search.evaluator import Evaluation, EvaluationCache
    from losslab.tracking.tracker import Tracker

__all__ = ["VERDICT", "VERDICT_OUTCOME", "TopRung", "log_verdict", "trial_label"]

VERDICT, VERDICT_OUTCOME = "losslab.verdict", "losslab.verdict.outcome"


def trial_label(record: TrialRecord) -> str:
    """How the verdict names an entry: ``trial 12 `tversky(alpha=0.21, beta=0.52) + cbs```
    (``Candidate.describe``: the loss with its parameters, schedules, train overrides)."""
    if record.candidate is None:
        return f"trial {root_of(record)} (invalid draw)"
    return f"trial {root_of(record)} `{record.candidate.describe(record.overrides)}`"


def contender_of(
    label: str, results: Mapping[int, Any], class_names: list[str], baseline: bool = False
) -> Contender | None:
    """A :class:`Contender` from results by seed index (``None`` when none has test cases)."""
    dice = {
        seed: result.test_cases["dice"]
        for seed, result in results.items()
        if result is not None and result.ok and result.test_cases.get("dice")
    }
    if not dice:
        return None
    return Contender(label, dice, list(class_names), baseline=baseline)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


@dataclass
class TopRung:
    """The top rung of a study's ladder, read from its cache (module docstring).

    ``baselines``: the study's baseline evaluations by ``(rung, seed)``."""

    ladder: Ladder
    cache: EvaluationCache
    class_names: list[str]
    baselines: Mapping[tuple[int, int], Sequence[Evaluation]]

    def racers(self, records: Sequence[TrialRecord]) -> tuple[list[Contender], list[int]]:
        """The top rung's entries as contenders, with their roots."""
        top = rung_table(records).get(self.ladder.top, {})
        racers, roots = [], []
        for root, seeds in sorted(top.items()):
            results = {}
            for seed, record in seeds.items():
                hit = self.cache.get(record.eval_key) if record.eval_key else None
                results[seed] = hit.result if hit is not None else None
            label = trial_label(seeds.get(0) or next(iter(seeds.values())))
            racer = contender_of(label, results, self.class_names)
            if racer is not None:
                racer.value = _mean([r.value for r in seeds.values() if r.status == "ok"])
                racers.append(racer)
                roots.append(root)
        return racers, roots

    def baseline_contenders(self) -> list[Contender]:
        """The study's baselines at the top rung, every seed they have."""
        results: dict[str, dict[int, Any]] = {}
        values: dict[str, list[float]] = {}
        for (rung, seed), evaluations in self.baselines.items():
            if rung != self.ladder.top:
                continue
            for evaluation in evaluations:
                name = evaluation.candidate.name
                results.setdefault(name, {})[seed] = evaluation.result
                if evaluation.result.ok:
                    values.setdefault(name, []).append(evaluation.value)
        out = []
        for name, by_seed in results.items():
            contender = contender_of(name, by_seed, self.class_names, baseline=True)
            if contender is not None:
                contender.value = _mean(values.get(name, []))
                out.append(contender)
        return out

    def eliminated(self, records: Sequence[TrialRecord]) -> set[int]:
        """The roots racing has dropped (none unless the top rung has several seeds)."""
        if self.ladder.seeds <= 1:
            return set()
        racers, roots = self.racers(records)
        if not racers:
            return set()
        losers = set(race_losers(racers, self.baseline_contenders()))
        return {root for root, racer in zip(roots, racers) if racer.label in losers}

    def verdict(
        self, records: Sequence[TrialRecord], seed: int = 0
    ) -> tuple[Verdict, TrialRecord | None]:
        """The verdict and the winner's top-rung entry (seed 0; ``None``: no winner)."""
        racers, roots = self.racers(records)
        dropped = self.eliminated(records)
        # Racing dropped those significantly below the best contender; when that was a
        # baseline and every racer was dropped, the best of them is still the one named.
        alive = [(racer, root) for racer, root in zip(racers, roots) if root not in dropped]
        alive = alive or list(zip(racers, roots))
        baselines = self.baseline_contenders()
        if not alive:
            return decide(None, baselines, seed=seed), None
        winner, root = max(
            alive, key=lambda item: (len(item[0].dice), _finite(item[0].value), -item[1])
        )
        top = rung_table(records).get(self.ladder.top, {}).get(root, {})
        return decide(winner, baselines, seed=seed), top.get(0)


def _finite(value: float) -> float:
    return value if not math.isnan(value) else -math.inf


def log_verdict(tracker: Tracker, parent: str, verdict: Verdict) -> None:
    """The verdict on the study's MLflow parent run."""
    tracker.set_tags(parent, {VERDICT: verdict.sentence[:4000], VERDICT_OUTCOME: verdict.outcome})
    tracker.log_text(parent, json.dumps(verdict.to_dict(), indent=2), "verdict.json")
