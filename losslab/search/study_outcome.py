"""What a study holds after one invocation: every worker's records, the baselines, results."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from losslab.data import SegmentationDataset
from losslab.search.backend import TrialRecord
from losslab.search.evaluator import Evaluation, EvaluationCache
from losslab.search.study_config import StudyConfig
from losslab.search.verdict import Verdict
from losslab.tracking.tracker import Tracker
from losslab.training import Result

__all__ = ["StudyOutcome"]


@dataclass
class StudyOutcome:
    """What a study holds after this invocation (all workers' entries, not only this one's)."""

    config: StudyConfig
    dataset: SegmentationDataset
    records: list[TrialRecord]
    baselines: list[Evaluation]
    results: dict[str, Result]  # eval key -> result, for the records and baselines
    parent_run_id: str
    tracker: Tracker
    storage_url: str
    trained: int = 0  # evaluations this invocation trained
    wall_time: float = 0.0
    interrupted: bool = False  # stopped by Ctrl-C or a signal
    out_of_time: bool = False  # the time budget ended during an evaluation (re-queued)
    reclaimed: list[int] = field(default_factory=list)
    seconds_per_evaluation: float | None = None  # a finished evaluation's wall time here
    trial_minutes_started: bool = False  # the trials' time budget started (baselines done)
    verdict: Verdict | None = None  # the study's one verdict (``study_verdict.py``)
    winner: TrialRecord | None = None  # the verdict's candidate, its top-rung entry
    rung_baselines: dict[tuple[int, int], list[Evaluation]] = field(default_factory=dict)

    def best_baseline(self, rung: int = 0) -> Evaluation | None:
        """The baseline of the highest objective among those that finished ok (at ``rung`` of
        the fidelity ladder, seed 0)."""
        baselines = self.rung_baselines.get((rung, 0), self.baselines if rung == 0 else [])
        ok = [e for e in baselines if e.result.ok and not math.isnan(e.value)]
        return max(ok, key=lambda e: e.value) if ok else None

    def beaten_by(self) -> Evaluation | None:
        """The best baseline when its objective is above the best trial's (``None`` when a
        trial is at least as good, or there is no finished trial or baseline): the best
        trial is then not the study's best candidate, and nothing calls it so."""
        best = self.best(1)
        baseline = self.best_baseline(best[0].rung) if best else None
        if not best or baseline is None:
            return None
        return baseline if baseline.value > best[0].value else None

    def best(self, k: int | None = None) -> list[TrialRecord]:
        """Completed entries by objective, best first, one per distinct evaluation. On a
        fidelity ladder one per proposal (its entry at the highest rung it reached, seed 0):
        the verdict's winner first, then those that reached higher rungs before the others."""
        seen, ranked = set(), []
        ok = [
            r for r in self.records if r.status == "ok" and not math.isnan(r.value) and r.seed == 0
        ]
        first = self.winner.number if self.winner is not None else -1
        roots = set()
        for record in sorted(ok, key=lambda r: (r.number != first, -r.rung, -r.value, r.number)):
            root = record.number if record.root is None else record.root
            if record.eval_key not in seen and root not in roots:  # a proposal once, at its top
                seen.add(record.eval_key)
                roots.add(root)
                ranked.append(record)
        return ranked[: k or len(ranked)]

    def collect_results(self, cache: EvaluationCache) -> None:
        """Fill :attr:`results` for the baselines and every record, from ``cache``."""
        for evaluation in self.baselines:
            self.results[evaluation.key] = evaluation.result
        for record in self.records:
            if record.eval_key and record.eval_key not in self.results:
                hit = cache.get(record.eval_key)
                if hit is not None:
                    self.results[record.eval_key] = hit.result

    def counts(self) -> dict[str, int]:
        counts = {"ok": 0, "pruned": 0, "failed": 0, "cached": 0}
        for record in self.records:
            counts[record.status] += 1
            counts["cached"] += bool(record.cached_from)
        return counts
