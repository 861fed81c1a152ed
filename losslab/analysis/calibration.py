"""How well each fidelity ranks candidates: the analysis behind ``losslab calibrate``.

A search trusts its cheap fidelity to rank candidates as the expensive one would. This module
measures that from a table of observations ``(candidate, fidelity, seed, value)`` (the value is
the study's objective) and the cost of each fidelity, with no training and no I/O, so it can be
checked on scripted results. Per fidelity it reports:

* **cost**: seconds per evaluation (CPU seconds where measured).
* **spread**: the seed-to-seed standard deviation of a candidate's value, averaged over
  candidates (NaN with one seed).
* **Spearman's rho and Kendall's tau** of the candidates' seed means at this fidelity against
  their seed means at the top fidelity, with intervals and exact small-n p-values
  (``losslab.stats.ranks``). The top fidelity is the reference; its own row gives the
  agreement of its seeds instead (its first seed's values against the mean of its other
  seeds), a rough ceiling for what any cheaper fidelity can reach.
* **separated**: the share of candidate pairs whose mean difference over the common seeds is
  more than twice its standard error (paired over seeds; NaN with fewer than two seeds).

The recommendation is the cheapest fidelity below the top whose Spearman's rho with the top
reaches ``threshold`` (0.8 by default), or none, which the caller reports with the measured
curve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from losslab.stats import RankCorrelation, kendall, spearman

__all__ = [
    "DEFAULT_THRESHOLD",
    "CalibrationReport",
    "FidelityRow",
    "Observation",
    "analyse",
    "separated_share",
    "seed_means",
]

DEFAULT_THRESHOLD = 0.8
"""The Spearman's rho with the top fidelity a recommended fidelity reaches."""


@dataclass(frozen=True)
class Observation:
    """One evaluation: ``value`` of ``candidate`` trained at ``fidelity`` with ``seed``
    (NaN for a failed run)."""

    candidate: str
    fidelity: str
    seed: int
    value: float


@dataclass(frozen=True)
class FidelityRow:
    """What one fidelity measured (see the module docstring).

    Attributes:
        fidelity: its name; cost: seconds per evaluation; evaluations: how many finished.
        candidates: candidates with a value at this fidelity and at the top.
        spread: mean over candidates of the standard deviation over seeds.
        spearman, kendall: against the top fidelity (for the top: its seeds' agreement).
        separated: share of candidate pairs separated over the seeds.
    """

    fidelity: str
    cost: float
    evaluations: int
    candidates: int
    spread: float
    spearman: RankCorrelation
    kendall: RankCorrelation
    separated: float


@dataclass(frozen=True)
class CalibrationReport:
    """Every fidelity's row, cheapest first, and the recommendation.

    Attributes:
        rows: one per fidelity, in the ladder's order (the top last).
        top: the reference fidelity.
        recommended: the cheapest fidelity below the top reaching ``threshold``, else None.
        threshold: the Spearman's rho required.
        ranks: fidelity -> candidate -> rank of its seed mean (1 = best), for the plot.
    """

    rows: list[FidelityRow]
    top: str
    recommended: str | None
    threshold: float
    ranks: dict[str, dict[str, float]]

    def row(self, fidelity: str) -> FidelityRow:
        """The row of ``fidelity`` (``KeyError`` naming the known ones)."""
        for row in self.rows:
            if row.fidelity == fidelity:
                return row
        raise KeyError(
            f"no fidelity {fidelity!r}; known: {', '.join(r.fidelity for r in self.rows)}"
        )


def _table(observations: Sequence[Observation]) -> dict[str, dict[str, dict[int, float]]]:
    """fidelity -> candidate -> seed -> value (finite values only)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    for o in observations:
        if math.isfinite(o.value):
            out.setdefault(o.fidelity, {}).setdefault(o.candidate, {})[o.seed] = float(o.value)
    return out


def seed_means(observations: Sequence[Observation], fidelity: str) -> dict[str, float]:
    """Each candidate's mean value over its seeds at ``fidelity`` (finite values only)."""
    table = _table(observations).get(fidelity, {})
    return {c: float(np.mean(list(v.values()))) for c, v in table.items()}


def separated_share(per_candidate: Mapping[str, Mapping[int, float]]) -> float:
    """Share of candidate pairs whose paired mean difference over their common seeds exceeds
    twice its standard error (``sd(d) / sqrt(n)``); a pair with fewer than two common seeds is
    left out, NaN when no pair is left. Identical differences on every seed (sd 0, mean not 0)
    count as separated."""
    names = sorted(per_candidate)
    separated = total = 0
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            seeds = sorted(set(per_candidate[a]) & set(per_candidate[b]))
            if len(seeds) < 2:
                continue
            d = np.array([per_candidate[a][s] - per_candidate[b][s] for s in seeds])
            total += 1
            se = float(d.std(ddof=1)) / math.sqrt(len(d))
            mean = abs(float(d.mean()))
            separated += mean > 2.0 * se if se > 0 else mean > 0
    return separated / total if total else math.nan


def _spread(per_candidate: Mapping[str, Mapping[int, float]]) -> float:
    sds = [float(np.std(list(v.values()), ddof=1)) for v in per_candidate.values() if len(v) > 1]
    return float(np.mean(sds)) if sds else math.nan


def _ranks(means: Mapping[str, float]) -> dict[str, float]:
    """Rank 1 for the highest value (average ranks for ties)."""
    from scipy.stats import rankdata

    names = sorted(means)
    ranks = rankdata([-means[n] for n in names])
    return {n: float(r) for n, r in zip(names, ranks)}


def _seed_agreement(
    per_candidate: Mapping[str, Mapping[int, float]], confidence: float
) -> tuple[RankCorrelation, RankCorrelation]:
    """The top fidelity's own reliability: the correlation of its first seed's values with
    the mean of its other seeds (NaN with one seed)."""
    seeds = sorted({s for v in per_candidate.values() for s in v})
    one, rest = [], []
    for values in per_candidate.values() if seeds else ():
        others = [v for s, v in values.items() if s != seeds[0]]
        if seeds[0] in values and others:
            one.append(values[seeds[0]])
            rest.append(float(np.mean(others)))
    return (
        spearman(one, rest, confidence=confidence),
        kendall(one, rest, confidence=confidence),
    )


def analyse(
    observations: Sequence[Observation],
    order: Sequence[str],
    costs: Mapping[str, float],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    confidence: float = 0.95,
) -> CalibrationReport:
    """Rank agreement of every fidelity with the top one (``order[-1]``).

    Args:
        observations: the evaluations (any order; NaN values are failed runs, left out).
        order: the fidelities from the cheapest to the top (the reference).
        costs: seconds per evaluation of each fidelity (NaN where unknown).
        threshold: the Spearman's rho a recommended fidelity reaches.
        confidence: of the correlation intervals.

    Raises:
        ValueError: no fidelities, a fidelity of ``observations`` not in ``order``, or a
            threshold outside (0, 1].
    """
    if not order:
        raise ValueError("calibration needs at least one fidelity")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
    unknown = sorted({o.fidelity for o in observations} - set(order))
    if unknown:
        raise ValueError(f"observations at fidelities not in the ladder: {', '.join(unknown)}")
    table = _table(observations)
    top = order[-1]
    top_means = {c: float(np.mean(list(v.values()))) for c, v in table.get(top, {}).items()}
    rows, ranks = [], {}
    for fidelity in order:
        per_candidate = table.get(fidelity, {})
        means = {c: float(np.mean(list(v.values()))) for c, v in per_candidate.items()}
        ranks[fidelity] = _ranks(means) if means else {}
        common = sorted(set(means) & set(top_means))
        if fidelity == top:
            rho, tau = _seed_agreement(per_candidate, confidence)
        else:
            x = [means[c] for c in common]
            y = [top_means[c] for c in common]
            rho = spearman(x, y, confidence=confidence)
            tau = kendall(x, y, confidence=confidence)
        rows.append(
            FidelityRow(
                fidelity=fidelity,
                cost=float(costs.get(fidelity, math.nan)),
                evaluations=sum(len(v) for v in per_candidate.values()),
                candidates=len(common),
                spread=_spread(per_candidate),
                spearman=rho,
                kendall=tau,
                separated=separated_share(per_candidate),
            )
        )
    below = [r for r in rows if r.fidelity != top and not math.isnan(r.spearman.rho)]
    reaching = [r for r in below if r.spearman.rho >= threshold]
    cheapest = min(
        reaching,
        key=lambda r: (math.inf if math.isnan(r.cost) else r.cost, order.index(r.fidelity)),
        default=None,
    )
    return CalibrationReport(rows, top, cheapest.fidelity if cheapest else None, threshold, ranks)
