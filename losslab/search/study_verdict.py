"""A study's one verdict: its best candidate at the top rung against its best baseline.

The winner is chosen among the top rung's racers that racing kept (every entry of a one-rung
study; all of them when racing dropped every one), by the most seeds and then the study's own objective (validation, the mean over its
seeds), never by the test split. It is then tested against every baseline at the top rung
over their shared (seed, test case) pairs of foreground mean Dice (``verdict.decide``: the
paired test and Holm correction of ``losslab compare``). The sentence is printed, written on
the study's MLflow parent run (tags ``losslab.verdict``, ``losslab.verdict.outcome``, the
description, ``verdict.json``) and shown by ``losslab report``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from losslab.search.backend import TrialRecord
from losslab.search.ladder import rung_table
from losslab.search.verdict import Verdict, decide

if TYPE_CHECKING:
    from losslab.search.study_ladder import LadderRunner
    from losslab.tracking.tracker import Tracker

__all__ = ["VERDICT", "VERDICT_OUTCOME", "log_verdict", "study_verdict"]

VERDICT, VERDICT_OUTCOME = "losslab.verdict", "losslab.verdict.outcome"


def study_verdict(
    ladder: LadderRunner, records: list[TrialRecord], seed: int = 0
) -> tuple[Verdict, TrialRecord | None]:
    """The verdict and the winner's top-rung entry (seed 0; ``None``: no winner)."""
    racers, roots = ladder.racers(records)
    dropped = ladder.eliminated(records)
    # Racing dropped those significantly below the best contender; when that was a baseline
    # and every racer was dropped, the best of them is still the one the verdict names.
    alive = [(racer, root) for racer, root in zip(racers, roots) if root not in dropped]
    alive = alive or list(zip(racers, roots))
    baselines = ladder.baseline_contenders(ladder.ladder.top)
    if not alive:
        return decide(None, baselines, seed=seed), None
    winner, root = max(
        alive, key=lambda item: (len(item[0].dice), _finite(item[0].value), -item[1])
    )
    top = rung_table(records).get(ladder.ladder.top, {}).get(root, {})
    return decide(winner, baselines, seed=seed), top.get(0)


def _finite(value: float) -> float:
    return value if value == value else float("-inf")


def log_verdict(tracker: Tracker, parent: str, verdict: Verdict) -> None:
    """The verdict on the study's MLflow parent run."""
    tracker.set_tags(
        parent,
        {VERDICT: verdict.sentence[:4000], VERDICT_OUTCOME: verdict.outcome},
    )
    tracker.log_text(parent, json.dumps(verdict.to_dict(), indent=2), "verdict.json")
