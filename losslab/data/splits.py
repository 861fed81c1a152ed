"""Deterministic train / validation / test splits of case indices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLIT_NAMES = ("train", "val", "test")


def make_splits(
    num_cases: int, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> dict[str, list[int]]:
    """Split ``range(num_cases)`` into disjoint train / val / test index lists.

    Sizes follow ``fractions`` by largest remainder; then every split whose fraction is positive
    gets at least one case when there are enough cases (``>= 3`` for three splits), taken from
    the largest split. The assignment is a permutation drawn from ``seed``.

    Example:
        >>> make_splits(5, seed=0)["train"] == make_splits(5, seed=0)["train"]
        True

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each sorted.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}"
        )
    if num_cases < 1:
        raise ValueError(f"cannot split {num_cases} cases")
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
