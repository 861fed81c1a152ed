"""The statistics of a :class:`~losslab.analysis.comparison.Comparison`.

- **Per class and metric** (Dice, sensitivity, precision, HD95): the mean over every (seed, test
  case) value, with a 95% bootstrap interval (a class absent from a case is left out of it).
  The interval is hierarchical by default (``bootstrap="hierarchical"``): it resamples seeds,
  then test cases within each seed, since the cases of one seed share one trained network;
  ``"flat"`` resamples the (seed, case) values as if independent (narrower when seeds differ).
- **The objective**: the study's objective of the test split, one value per seed, with a 95%
  bootstrap interval over seeds.
- **Paired tests** over the same (seed, test case) pairs: Wilcoxon's signed-rank test per
  class, Holm-corrected across the foreground classes (for each metric and pair), and for the
  objective of each case; the difference's interval is bootstrapped as above. With 3 seeds
  alone the smallest two-sided exact p is 0.25, so pairing by case is what lets a difference
  show. ``pairs="all"`` (default) tests every pair of entrants, baselines against each other
  too (asymmetric focal against focal); ``"candidates"`` each candidate against each baseline.
- **Search quality**: Spearman's rho and Kendall's tau between the search fidelity's objective
  (validation) and the final fidelity's mean objective (test), over every entrant that has
  both (candidates and baselines, identical ones counted once), with exact p-values at small
  n (:mod:`losslab.stats.ranks`).

HD95 is better when lower: its marks are turned round so that a ▲ always means better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from losslab.analysis.comparison import Comparison, Entrant
from losslab.classwise import foreground_mean
from losslab.stats import (
    BETTER,
    WORSE,
    Interval,
    PairedTest,
    RankCorrelation,
    hierarchical_interval,
    holm,
    kendall,
    mean_interval,
    paired_test,
    significance_mark,
    spearman,
)

__all__ = ["BOOTSTRAPS", "METRICS", "PAIRS", "ComparisonStats", "PairStats", "compute_stats"]

BOOTSTRAPS = ("hierarchical", "flat")
PAIRS = ("all", "candidates")

METRICS = (("dice", "DSC"), ("sensitivity", "SEN"), ("precision", "PRC"), ("hd95", "HD95 mm"))
LOWER_IS_BETTER = {"hd95"}


@dataclass
class PairStats:
    """One entrant (``candidate``) against another (``baseline``; a baseline against a
    baseline in an all-pairs comparison): per metric, per class, the paired test and its mark
    (▲: ``candidate`` better)."""

    candidate: str
    baseline: str
    objective: PairedTest
    objective_mark: str
    classes: dict[str, list[PairedTest | None]] = field(default_factory=dict)  # metric -> [C]
    adjusted: dict[str, list[float]] = field(default_factory=dict)  # Holm, metric -> [C]
    marks: dict[str, list[str]] = field(default_factory=dict)  # metric -> [C] (▲, ▼ or "")

    def count(self, mark: str, metric: str = "dice") -> int:
        return sum(m == mark for m in self.marks.get(metric, []))

    def flipped(self) -> PairStats:
        """The same pair seen from the other side: differences negated, marks turned round."""
        turn = {BETTER: WORSE, WORSE: BETTER}
        return PairStats(
            self.baseline,
            self.candidate,
            _flip(self.objective),
            turn.get(self.objective_mark, ""),
            {m: [_flip(t) if t else None for t in ts] for m, ts in self.classes.items()},
            dict(self.adjusted),
            {m: [turn.get(k, "") for k in ks] for m, ks in self.marks.items()},
        )


def _flip(test: PairedTest) -> PairedTest:
    d = test.difference
    return PairedTest(Interval(-d.mean, -d.high, -d.low, d.n), test.p, test.method, test.n)


@dataclass
class ComparisonStats:
    """Intervals per entrant, paired tests per (candidate, baseline), the rank correlation."""

    metrics: list[str]  # those the results hold (HD95 only when computed)
    classes: dict[str, dict[str, list[Interval]]]  # entrant -> metric -> [C]
    foreground: dict[str, dict[str, Interval]]  # entrant -> metric -> mean over classes 1..
    objective: dict[str, Interval]  # entrant -> over seeds
    pairs: dict[tuple[str, str], PairStats]
    rank: RankCorrelation
    cases: int  # test cases per seed
    kendall: RankCorrelation | None = None
    bootstrap: str = "hierarchical"
    rank_rung: int = 0  # the ladder rung whose search values the rank correlation uses
    rank_left_out: int = 0  # entrants with a search value at a lower rung, not ranked

    def pair(self, candidate: str, baseline: str) -> PairStats | None:
        """``candidate`` against ``baseline``, tested in either order (``None``: not tested)."""
        found = self.pairs.get((candidate, baseline))
        if found is None and (baseline, candidate) in self.pairs:
            return self.pairs[(baseline, candidate)].flipped()
        return found


def _case_values(entrant: Entrant, metric: str) -> dict[tuple[int, str], list[float]]:
    """(seed index, case id) -> per-class values of one metric."""
    out = {}
    for s, result in enumerate(entrant.results):
        if not result.ok:
            continue
        rows = result.test_cases.get(metric, [])
        ids = result.test_case_ids or [str(i) for i in range(len(rows))]
        for case_id, row in zip(ids, rows):
            out[(s, case_id)] = list(row)
    return out


def _interval(values: dict, pick, bootstrap: str, seed: int) -> Interval:
    """The interval of ``pick(row)`` over (seed, case) rows: hierarchical or flat."""
    if bootstrap == "flat":
        return mean_interval([pick(row) for row in values.values()], seed=seed)
    groups: dict[int, list[float]] = {}
    for (s, _), row in values.items():
        groups.setdefault(s, []).append(pick(row))
    return hierarchical_interval(list(groups.values()), seed=seed)


def _paired(a: dict, b: dict, classes: int, lower_better: bool, seed: int, bootstrap: str):
    keys = sorted(set(a) & set(b))
    groups = [k[0] for k in keys] if bootstrap == "hierarchical" else None
    tests: list[PairedTest | None] = [None]
    for c in range(1, classes):
        tests.append(
            paired_test([a[k][c] for k in keys], [b[k][c] for k in keys], seed=seed, groups=groups)
        )
    adjusted = [math.nan, *holm([t.p for t in tests[1:]])]
    sign = -1.0 if lower_better else 1.0
    marks = [""] + [
        significance_mark(p, sign * t.difference.mean) for p, t in zip(adjusted[1:], tests[1:])
    ]
    return tests, adjusted, marks


def _pairs(comparison: Comparison, pairs: str) -> list[tuple[Entrant, Entrant]]:
    """The pairs to test: each candidate against each baseline, then (``all``) the baselines
    against each other and the candidates against each other, each pair once."""
    out = [(c, b) for c in comparison.candidates for b in comparison.baselines]
    if pairs == "all":
        for group in (comparison.baselines, comparison.candidates):
            out += [(a, b) for i, a in enumerate(group) for b in group[i + 1 :]]
    return out


def compute_stats(
    comparison: Comparison,
    *,
    seed: int = 0,
    bootstrap: str = "hierarchical",
    pairs: str = "all",
) -> ComparisonStats:
    """Everything the comparison's tables show (see the module docstring).

    Raises:
        ValueError: an unknown ``bootstrap`` or ``pairs``.
    """
    if bootstrap not in BOOTSTRAPS:
        raise ValueError(f"unknown bootstrap {bootstrap!r}; known: {', '.join(BOOTSTRAPS)}")
    if pairs not in PAIRS:
        raise ValueError(f"unknown pairs {pairs!r}; known: {', '.join(PAIRS)}")
    classes = comparison.dataset.num_classes
    objective = comparison.config.objective
    present = {m for e in comparison.entrants for r in e.ok for m in r.test_cases}
    metrics = [m for m, _ in METRICS if m in present]
    per_class: dict[str, dict[str, list[Interval]]] = {}
    foreground: dict[str, dict[str, Interval]] = {}
    objective_ci: dict[str, Interval] = {}
    case_values: dict[str, dict[str, dict]] = {}
    cases = len(comparison.dataset.splits.get("test", []))
    for entrant in comparison.entrants:
        case_values[entrant.label] = {m: _case_values(entrant, m) for m in metrics}
        values = case_values[entrant.label]
        per_class[entrant.label] = {
            m: [
                _interval(values[m], lambda row, c=c: row[c], bootstrap, seed)
                for c in range(classes)
            ]
            for m in metrics
        }
        foreground[entrant.label] = {
            m: _interval(values[m], foreground_mean, bootstrap, seed) for m in metrics
        }
        objective_ci[entrant.label] = mean_interval(
            [objective.of_test(r) for r in entrant.ok], seed=seed
        )
    tested = {}
    for candidate, baseline in _pairs(comparison, pairs):
        a = case_values[candidate.label].get("dice", {})
        b = case_values[baseline.label].get("dice", {})
        keys = sorted(set(a) & set(b))
        test = paired_test(
            [objective(a[k]) for k in keys],
            [objective(b[k]) for k in keys],
            seed=seed,
            groups=[k[0] for k in keys] if bootstrap == "hierarchical" else None,
        )
        stats = PairStats(
            candidate.label,
            baseline.label,
            test,
            significance_mark(test.p, test.difference.mean),
        )
        for m in metrics:
            tests, adjusted, marks = _paired(
                case_values[candidate.label][m],
                case_values[baseline.label][m],
                classes,
                m in LOWER_IS_BETTER,
                seed,
                bootstrap,
            )
            stats.classes[m], stats.adjusted[m], stats.marks[m] = tests, adjusted, marks
        tested[(candidate.label, baseline.label)] = stats
    valued = [e for e in comparison.entrants if not math.isnan(e.search_value)]
    # On a ladder only values of one rung rank alike: the highest rung an entrant reached.
    top = max((e.rung for e in valued), default=0)
    ranked = [e for e in valued if e.rung == top]
    x = [e.search_value for e in ranked]
    y = [objective_ci[e.label].mean for e in ranked]
    return ComparisonStats(
        metrics,
        per_class,
        foreground,
        objective_ci,
        tested,
        spearman(x, y, seed=seed),
        cases,
        kendall(x, y, seed=seed),
        bootstrap,
        rank_rung=top,
        rank_left_out=len(valued) - len(ranked),
    )
