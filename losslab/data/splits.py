"""Deterministic train / validation / test splits of case indices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


def _checked_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}"
        )
    return fractions


def min_cases(fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> int:
    """Fewest cases ``make_splits`` accepts: one per split whose fraction is positive."""
    return sum(1 for f in _checked_fractions(fractions) if f > 0)


def split_problem(
    num_cases: int, fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS
) -> str | None:
    """Why ``num_cases`` cases cannot be split by ``fractions``, or None when they can."""
    need = min_cases(fractions)
    if num_cases >= need:
        return None
    named = ", ".join(
        f"{name} {f:g}" for name, f in zip(SPLIT_NAMES, _checked_fractions(fractions))
    )
    return (
        f"{num_cases} case(s) cannot give the train/val/test splits of split_fractions "
        f"({named}): every split with a positive fraction needs a case of its own, so at least "
        f"{need} cases are needed; add cases, or set the fraction of a split to 0 to do "
        f"without it (no score is then measured on it)"
    )


def make_splits(
    num_cases: int, fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS, seed: int = 0
) -> dict[str, list[int]]:
    """Split ``range(num_cases)`` into disjoint train / val / test index lists.

    Sizes follow ``fractions`` by largest remainder; then every split whose fraction is positive
    gets at least one case, taken from the largest split. The assignment is a permutation drawn
    from ``seed``.

    Too few cases are refused rather than split with an empty validation or test split (one
    case with the default fractions): every score losslab reports (the study objective, the
    per-class table, the MLflow metrics) is measured on those splits, so a run without them
    would train, record NaN and look like a success; and reusing the training case as its own
    validation and test case would report training-set scores as held-out ones. A user who
    really wants fewer splits says so with a zero fraction, e.g. ``(1, 0, 0)`` trains on every
    case and measures nothing.

    Example:
        >>> make_splits(5, seed=0)["train"] == make_splits(5, seed=0)["train"]
        True

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted.

    Raises:
        ValueError: bad fractions, or fewer cases than splits with a positive fraction
            (``split_problem`` says why).
    """
    fractions = _checked_fractions(fractions)
    if num_cases < 1:
        raise ValueError(f"cannot split {num_cases} cases")
    problem = split_problem(num_cases, fractions)
    if problem is not None:
        raise ValueError(problem)
    exact = np.asarray(fractions) * num_cases
    sizes = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - sizes), kind="stable")[: num_cases - sizes.sum()]:
        sizes[i] += 1
    for i in range(3):
        if fractions[i] > 0 and sizes[i] == 0:
            donor = int(np.argmax(sizes))
            if sizes[donor] > 1:
                sizes[donor] -= 1
                sizes[i] += 1
    order = np.random.default_rng(seed).permutation(num_cases)
    bounds = np.cumsum([0, *sizes])
    return {
        name: sorted(int(j) for j in order[bounds[i] : bounds[i + 1]])
        for i, name in enumerate(SPLIT_NAMES)
    }
