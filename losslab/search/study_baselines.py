"""A study's baselines: at its fidelity and seed, or on a ladder at every rung and top seed.

They train before the trials' minutes start (``study_timing``) and are cached, so a rerun skips
them; each rung's ranking is read against them, and the top rung's race and verdict compare
with them over the top rung's seeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from losslab.search.backend import Proposal
from losslab.search.study_console import describe
from losslab.search.study_ladder import ladder_tags
from losslab.search.study_timing import baselines_line, evaluation_seconds

if TYPE_CHECKING:
    from losslab.search.study import Study

__all__ = ["run_baselines"]


def run_baselines(study: Study) -> None:
    """Evaluate ``study``'s baselines (module docstring), reporting each."""
    config, ladder = study.config, study.config.ladder
    places = [(r, s) for r, rung in enumerate(ladder.rungs) for s in range(rung.seeds)]
    jobs = [(r, s, c) for r, s in places for c in config.baselines]
    untrained = [
        c
        for r, s, c in jobs
        if study.evaluators[r].cache.get(study.evaluators[r].key(c, seed=config.seed + s)) is None
    ]
    known = evaluation_seconds(study._known)
    fidelities = "at the search fidelity"
    if not ladder.plain:
        fidelities = f"at each of the {len(ladder.rungs)} rungs ({ladder.seeds} seeds at the top)"
    study.say(baselines_line(len(untrained), len(jobs), config.budget.minutes, known, fidelities))
    for rung, seed, candidate in jobs:
        where = "" if ladder.plain else f" (rung {rung}, seed {seed})"
        tags = {"losslab.role": "baseline"}
        if not ladder.plain:
            tags.update(ladder_tags(rung, seed, None))
        evaluation = study.evaluate(
            Proposal(candidate, rung=rung, seed=seed), f"baseline {candidate.name}{where}", tags
        )
        study.rung_baselines.setdefault((rung, seed), []).append(evaluation)
        if (rung, seed) == (0, 0):
            study.outcome.baselines.append(evaluation)
        result = evaluation.result
        line = describe(
            "baseline" + where,
            candidate.name,
            result.status,
            evaluation.value,
            result.reason,
            evaluation.cached,
        )
        study.report(line, result.status, trial=False)
