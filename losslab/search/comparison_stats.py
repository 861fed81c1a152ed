"""The statistics of a :class:`~losslab.search.comparison.Comparison`.

- **Per class and metric** (Dice, sensitivity, precision, HD95): the mean over every (seed, test
  case) value, with a 95% bootstrap interval over those values (a class absent from a case is
  left out of it).
- **The objective**: the study's objective of the test split, one value per seed, with a 95%
  bootstrap interval over seeds.
- **Paired tests** of each candidate against each baseline, over the same (seed, test case)
  pairs: Wilcoxon's signed-rank test per class, Holm-corrected across the foreground classes
  (for each metric and pair), and for the objective of each case. With 3 seeds alone the
  smallest two-sided exact p is 0.25, so pairing by case is what lets a difference show.
- **Search quality**: Spearman's rank correlation between the search fidelity's objective
  (validation) and the final fidelity's mean objective (test), over every entrant that has
  both (candidates and baselines).

HD95 is better when lower: its marks are turned round so that a ▲ always means better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from losslab.classwise import foreground_mean
from losslab.search.comparison import Comparison, Entrant
from losslab.stats import (
    Interval,
    PairedTest,
    RankCorrelation,
    holm,
    mean_interval,
    paired_test,
    rank_correlation,
    significance_mark,
)

__all__ = ["METRICS", "ComparisonStats", "PairStats", "compute_stats"]

METRICS = (("dice", "DSC"), ("sensitivity", "SEN"), ("precision", "PRC"), ("hd95", "HD95 mm"))
LOWER_IS_BETTER = {"hd95"}


@dataclass
class PairStats:
    """A candidate against a baseline: per metric, per class, the paired test and its mark."""

    candidate: str
    baseline: str
    objective: PairedTest
    objective_mark: str
    classes: dict[str, list[PairedTest | None]] = field(default_factory=dict)  # metric -> [C]
    adjusted: dict[str, list[float]] = field(default_factory=dict)  # Holm, metric -> [C]
    marks: dict[str, list[str]] = field(default_factory=dict)  # metric -> [C] (▲, ▼ or "")

    def count(self, mark: str, metric: str = "dice") -> int:
        return sum(m == mark for m in self.marks.get(metric, []))


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

    def pair(self, candidate: str, baseline: str) -> PairStats | None:
        return self.pairs.get((candidate, baseline))


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


def _paired(a: dict, b: dict, classes: int, lower_better: bool, seed: int):
    keys = sorted(set(a) & set(b))
    tests: list[PairedTest | None] = [None]
    for c in range(1, classes):
        tests.append(paired_test([a[k][c] for k in keys], [b[k][c] for k in keys], seed=seed))
    adjusted = [math.nan, *holm([t.p for t in tests[1:]])]
    sign = -1.0 if lower_better else 1.0
    marks = [""] + [
        significance_mark(p, sign * t.difference.mean) for p, t in zip(adjusted[1:], tests[1:])
    ]
    return tests, adjusted, marks


def compute_stats(comparison: Comparison, *, seed: int = 0) -> ComparisonStats:
    """Everything the comparison's tables show (see the module docstring)."""
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
        per_class[entrant.label] = {
            m: [
                mean_interval([row[c] for row in case_values[entrant.label][m].values()], seed=seed)
                for c in range(classes)
            ]
            for m in metrics
        }
        foreground[entrant.label] = {
            m: mean_interval(
                [foreground_mean(row) for row in case_values[entrant.label][m].values()],
                seed=seed,
            )
            for m in metrics
        }
        objective_ci[entrant.label] = mean_interval(
            [objective.of_test(r) for r in entrant.ok], seed=seed
        )
    pairs = {}
    for candidate in comparison.candidates:
        for baseline in comparison.baselines:
            a = case_values[candidate.label].get("dice", {})
            b = case_values[baseline.label].get("dice", {})
            keys = sorted(set(a) & set(b))
            test = paired_test(
                [objective(a[k]) for k in keys], [objective(b[k]) for k in keys], seed=seed
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
                )
                stats.classes[m], stats.adjusted[m], stats.marks[m] = tests, adjusted, marks
            pairs[(candidate.label, baseline.label)] = stats
    ranked = [e for e in comparison.entrants if not math.isnan(e.search_value)]
    rank = rank_correlation(
        [e.search_value for e in ranked], [objective_ci[e.label].mean for e in ranked]
    )
    return ComparisonStats(metrics, per_class, foreground, objective_ci, pairs, rank, cases)
