"""A study's verdict and the racing at its top rung: does the winner beat the baselines?

At the top fidelity rung every entrant (the study's candidates and the hand-designed
baselines) is scored on the same test cases over one or more seeds. These functions read those
per-case Dice values, as ``losslab compare`` does:

* values are paired by (seed, test case), over the seeds both sides have;
* the paired test is Wilcoxon's signed-rank test, and the interval of the difference is the
  hierarchical bootstrap that resamples seeds, then cases within seeds
  (:func:`losslab.stats.paired_test` with ``groups`` = the seed of each pair);
* p-values are Holm-corrected across the comparisons made together (the baselines, the classes,
  or the racers).

:func:`decide` writes the one-line verdict of a finished study (the study's winner against
the best baseline, Holm across every baseline) and the classes that moved.
:func:`race_losers` is F-race style elimination (Birattari, Stuetzle, Paquete & Varrentrapp,
GECCO 2002; as in irace): the racers significantly worse than the best entrant so far.

The per-case objective is the mean Dice over the foreground classes present in the case; a
class absent from a case (NaN) is left out, never counted as zero. Everything is deterministic
for a given ``seed`` (the bootstrap's and, with ties, the permutation test's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from losslab.stats import Interval, PairedTest, hierarchical_interval, holm, paired_test

__all__ = [
    "OUTCOMES",
    "Contender",
    "Verdict",
    "case_objective",
    "decide",
    "race_losers",
]

OUTCOMES = ("better", "worse", "no difference", "no candidate", "no baseline")
"""The outcomes of :func:`decide`, as :attr:`Verdict.outcome` names them."""


@dataclass
class Contender:
    """One entrant's per-case test Dice at the top rung.

    ``dice[seed]`` holds one ``[C]`` list per test case (class 0 = background, NaN = class
    absent from the case); every seed holds the same test cases in the same order. ``label``
    is how the sentences name it (``trial 12 `tversky(alpha=0.21) + cbs` `` or ``dice+cbs``).
    ``value`` is the study's own (validation) objective, mean over seeds: how the caller picks
    the winner (never by test); the functions here do not read it.
    """

    label: str
    dice: dict[int, list[list[float]]]
    class_names: list[str]
    baseline: bool = False
    value: float = math.nan


@dataclass
class Verdict:
    """What :func:`decide` concludes.

    ``sentence`` is the one-line verdict and ``classes`` the per-class line (``""`` when no
    class moved significantly). ``difference`` is winner minus reference, mean foreground
    Dice per (seed, case) pair; ``p`` its Holm-adjusted p (across the baselines), NaN when
    nothing was tested. ``seeds`` and ``cases`` are the design the numbers come from: the
    seeds shared by the winner and the reference (or those of the one side there is) and the
    test cases per seed. ``outcome`` is one of :data:`OUTCOMES`.
    """

    sentence: str
    classes: str
    winner: str | None
    reference: str | None
    difference: Interval | None
    p: float
    seeds: int
    cases: int
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-able values (NaN becomes ``None``), e.g. for an MLflow artifact."""
        out = asdict(self)
        out["p"] = _json_float(self.p)
        if self.difference is not None:
            out["difference"] = {k: _json_float(v) for k, v in asdict(self.difference).items()}
        return out


def _json_float(value: float | int) -> float | int | None:
    """``value`` unchanged, or ``None`` for NaN (JSON has no NaN)."""
    return None if isinstance(value, float) and math.isnan(value) else value


# ----------------------------------------------------------------------------- per-case values


def _rows(contender: Contender, seed: int) -> np.ndarray:
    """The ``[cases, C]`` Dice table of one seed (``[0, C]`` when it holds no case)."""
    if seed not in contender.dice:
        raise ValueError(f"{contender.label} has no seed {seed}; it has {sorted(contender.dice)}")
    rows = np.asarray(contender.dice[seed], dtype=float)
    if rows.size == 0:
        return np.zeros((0, max(len(contender.class_names), 1)))
    if rows.ndim != 2:
        raise ValueError(
            f"{contender.label}, seed {seed}: expected one list of per-class values per test "
            f"case, got an array of shape {rows.shape}"
        )
    return rows


def _foreground_mean(rows: np.ndarray) -> np.ndarray:
    """Per row, the mean over the foreground classes (1..) that have a value; NaN if none."""
    foreground = rows[:, 1:]
    present = ~np.isnan(foreground)
    counts = present.sum(axis=1)
    sums = np.where(present, foreground, 0.0).sum(axis=1)
    return np.divide(sums, counts, out=np.full(len(rows), math.nan), where=counts > 0)


def case_objective(contender: Contender, seeds: Sequence[int]) -> np.ndarray:
    """Per (seed, case), the mean Dice over the foreground classes present in the case.

    The values of ``seeds`` follow each other in the order given, each seed's cases in their
    own order: ``[len(seeds) * K]`` for ``K`` cases per seed. A case where no foreground class
    is present gives NaN.

    Raises:
        ValueError: a seed the contender does not have, or a seed's values not a table.
    """
    parts = [_foreground_mean(_rows(contender, s)) for s in seeds]
    return np.concatenate(parts) if parts else np.zeros(0)


def _own_mean(contender: Contender) -> float:
    """The mean of :func:`case_objective` over the contender's own seeds (NaN if none)."""
    values = case_objective(contender, sorted(contender.dice))
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def _best(contenders: Sequence[Contender]) -> int:
    """The index of the highest own mean (ties and NaNs: the first given wins)."""
    means = [_own_mean(c) for c in contenders]
    scores = [-math.inf if math.isnan(m) else m for m in means]
    return scores.index(max(scores))


def _finished(contender: Contender) -> bool:
    """Whether the contender holds at least one test case."""
    return any(len(rows) for rows in contender.dice.values())


@dataclass(frozen=True)
class _Pairs:
    """The (seed, case) pairs of two contenders: their ``[N, C]`` tables and each pair's seed."""

    a: np.ndarray
    b: np.ndarray
    groups: np.ndarray
    seeds: int
    cases: int


def _pairs(a: Contender, b: Contender) -> _Pairs:
    """``a`` and ``b`` paired by (seed, case) over the seeds both have, sorted.

    Raises:
        ValueError: a shared seed where the two hold a different number of test cases.
    """
    shared = sorted(set(a.dice) & set(b.dice))
    tables_a, tables_b, groups = [], [], []
    for s in shared:
        rows_a, rows_b = _rows(a, s), _rows(b, s)
        if len(rows_a) != len(rows_b):
            raise ValueError(
                f"seed {s}: {a.label} has {len(rows_a)} test cases, {b.label} has "
                f"{len(rows_b)}; paired values need the same test cases"
            )
        tables_a.append(rows_a)
        tables_b.append(rows_b)
        groups += [s] * len(rows_a)
    width = max(len(a.class_names), len(b.class_names), 1)
    cases = len(tables_a[0]) if tables_a else 0
    return _Pairs(
        np.concatenate(tables_a) if tables_a else np.zeros((0, width)),
        np.concatenate(tables_b) if tables_b else np.zeros((0, width)),
        np.asarray(groups, dtype=int),
        len(shared),
        cases,
    )


def _objective_test(a: Contender, b: Contender, seed: int) -> tuple[PairedTest, _Pairs]:
    """The paired Wilcoxon test of ``a`` against ``b`` on the per-case objective."""
    pairs = _pairs(a, b)
    test = paired_test(
        _foreground_mean(pairs.a),
        _foreground_mean(pairs.b),
        method="wilcoxon",
        groups=pairs.groups,
        seed=seed,
    )
    return test, pairs


# ----------------------------------------------------------------------------- text


def _p_text(p: float) -> str:
    """``p = 0.004``, ``p = 0.61`` (two significant digits) or ``p < 0.001``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def _design(seeds: int, cases: int) -> str:
    """``5 seeds x 3 cases`` (``1 seed``, ``1 case`` in the singular)."""
    return f"{seeds} seed{'' if seeds == 1 else 's'} x {cases} case{'' if cases == 1 else 's'}"


def _difference_text(d: Interval) -> str:
    """``+0.031 mean Dice [0.012, 0.049]``."""
    return f"{d.mean:+.3f} mean Dice [{d.low:.3f}, {d.high:.3f}]"


def _class_line(winner: Contender, pairs: _Pairs, alpha: float, seed: int) -> str:
    """The foreground classes whose paired difference is significant after Holm, in order."""
    classes = pairs.a.shape[1]
    tests = [
        paired_test(pairs.a[:, c], pairs.b[:, c], method="wilcoxon", groups=pairs.groups, seed=seed)
        for c in range(1, classes)
    ]
    adjusted = holm([t.p for t in tests])
    names = list(winner.class_names) + [
        f"class {c}" for c in range(len(winner.class_names), classes)
    ]
    moved = [
        f"{names[c]} {t.difference.mean:+.3f} ({_p_text(p)})"
        for c, t, p in zip(range(1, classes), tests, adjusted)
        if not math.isnan(p) and p < alpha and t.difference.mean != 0
    ]
    return "per class: " + ", ".join(moved) if moved else ""


# ----------------------------------------------------------------------------- verdict


def _alone(winner: Contender, seed: int) -> Verdict:
    """The verdict of a winner with no baseline: its mean and interval."""
    seeds = sorted(s for s in winner.dice if len(winner.dice[s]))
    groups = [case_objective(winner, [s]) for s in seeds]
    interval = hierarchical_interval(groups, seed=seed)
    cases = len(winner.dice[seeds[0]])
    sentence = (
        f"{winner.label}: mean Dice {interval.format(3)} over {_design(len(seeds), cases)}; "
        "no baseline to compare with"
    )
    return Verdict(
        sentence, "", winner.label, None, None, math.nan, len(seeds), cases, "no baseline"
    )


def _no_candidate(baselines: Sequence[Contender]) -> Verdict:
    """The verdict of a study whose candidates never reached the top rung."""
    if not baselines:
        return Verdict(
            "nothing finished: no verdict", "", None, None, None, math.nan, 0, 0, "no candidate"
        )
    reference = baselines[_best(baselines)]
    seeds = sorted(s for s in reference.dice if len(reference.dice[s]))
    sentence = (
        "no candidate finished at the top rung; the best baseline is "
        f"{reference.label} (mean Dice {_own_mean(reference):.3f})"
    )
    cases = len(reference.dice[seeds[0]])
    return Verdict(
        sentence, "", None, reference.label, None, math.nan, len(seeds), cases, "no candidate"
    )


def decide(
    winner: Contender | None,
    baselines: Sequence[Contender],
    *,
    alpha: float = 0.05,
    seed: int = 0,
) -> Verdict:
    """The study's verdict: does ``winner`` beat the best baseline?

    The reference is the baseline with the highest mean per-case objective over its own seeds
    (ties: the first given). The winner is tested against every baseline over their shared
    (seed, case) pairs (Wilcoxon, hierarchical bootstrap interval), the p-values are Holm-
    corrected across the baselines, and the reference's adjusted p decides: ``"better"`` or
    ``"worse"`` when below ``alpha`` (by the sign of the difference), else ``"no difference"``.
    Per foreground class, the winner is tested against the reference over the same pairs (NaN
    pairs dropped), Holm across the classes; the classes below ``alpha`` fill
    :attr:`Verdict.classes`.

    A winner or baseline without any test case counts as not finished. See the module
    docstring for the sentences' forms.

    Raises:
        ValueError: a shared seed where two contenders hold different numbers of test cases.
    """
    baselines = [b for b in baselines if _finished(b)]
    if winner is None or not _finished(winner):
        return _no_candidate(baselines)
    if not baselines:
        return _alone(winner, seed)
    reference_index = _best(baselines)
    reference = baselines[reference_index]
    tests = [_objective_test(winner, b, seed) for b in baselines]
    adjusted = holm([test.p for test, _ in tests])
    test, pairs = tests[reference_index]
    p = adjusted[reference_index]
    difference = test.difference
    design = _design(pairs.seeds, pairs.cases)
    if test.n == 0:
        sentence = (
            f"no candidate separated from {reference.label}: the best, {winner.label}, has no "
            "(seed, test case) pair in common with it"
        )
        return Verdict(
            sentence, "", winner.label, reference.label, difference, p, 0, 0, "no difference"
        )
    tail = f"{_difference_text(difference)}, {_p_text(p)}, {design}"
    if p < alpha and difference.mean > 0:
        outcome = "better"
        sentence = f"{winner.label} beats {reference.label} by {tail}"
    elif p < alpha and difference.mean < 0:
        outcome = "worse"
        sentence = f"{reference.label} beats every candidate: the best, {winner.label}, by {tail}"
    else:
        outcome = "no difference"
        sentence = (
            f"no candidate separated from {reference.label}: the best, {winner.label}, {tail}"
        )
    return Verdict(
        sentence,
        _class_line(winner, pairs, alpha, seed),
        winner.label,
        reference.label,
        difference,
        p,
        pairs.seeds,
        pairs.cases,
        outcome,
    )


# ----------------------------------------------------------------------------- racing


def race_losers(
    racers: Sequence[Contender],
    others: Sequence[Contender] = (),
    *,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[str]:
    """The labels of the racers significantly worse than the best entrant (F-race elimination).

    The best is the contender, among ``racers`` and ``others`` (e.g. the baselines), with the
    highest mean per-case objective over its own seeds (ties: the first, racers before
    others). Every other racer is tested against it over their shared (seed, case) pairs
    (Wilcoxon, as in :func:`decide`); the p-values are Holm-corrected across those racers, and
    a racer is eliminated when its adjusted p is below ``alpha`` and its mean difference is
    negative. A racer with no pair in common with the best is never eliminated; the best never
    is. The labels come in the racers' order.

    Raises:
        ValueError: a shared seed where two contenders hold different numbers of test cases.
    """
    everyone = [*racers, *others]
    if not everyone:
        return []
    best_index = _best(everyone)
    best = everyone[best_index]
    tested = [i for i in range(len(racers)) if i != best_index]
    tests = [_objective_test(racers[i], best, seed)[0] for i in tested]
    adjusted = holm([t.p for t in tests])
    return [
        racers[i].label
        for i, t, p in zip(tested, tests, adjusted)
        if not math.isnan(p) and p < alpha and t.difference.mean < 0
    ]
