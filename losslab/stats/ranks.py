"""Rank correlations that hold at small n: Spearman's rho and Kendall's tau-b.

``losslab compare`` asks whether the search's scores rank the candidates as their re-trained
scores do, and ``losslab calibrate`` asks the same of each rung of a fidelity ladder; both
have a handful of candidates (3 to 10). At that size SciPy's default p-values (a t or normal
approximation) are wrong by an order of magnitude: three candidates in perfect order give
``spearmanr``'s p = 0 while the exact two-sided p is 2/6 = 1/3 (the identity and the reversal
are two of the six orderings). Here:

* **p-values** come from the permutation null of the rank statistic, by enumeration of all
  ``n!`` orderings of ``y`` against ``x`` when ``n <= exact_max_n`` (8 by default: 40,320
  orderings), else from ``n_resamples`` random orderings seeded by ``seed``, with
  ``p = (1 + hits) / (1 + n_resamples)`` (Phipson & Smyth 2010, never zero). The statistics
  are compared as integers (doubled average ranks), so a tie with the observed value is never
  lost to rounding. Ties are handled by average ranks and the null keeps the tie pattern.
* **Intervals** are Fisher-z intervals with the small-sample variances of Bonett & Wright
  (2000): ``(1 + r**2 / 2) / (n - 3)`` for Spearman, ``0.437 / (n - 4)`` for Kendall (after
  Fieller, Hartley & Pearson 1957). Where the variance is undefined (``n <= 3`` for
  Spearman, ``n <= 4`` for Kendall) the interval is ``[-1, 1]``. A perfect ``|r| = 1`` has an
  infinite Fisher transform (the interval would have zero width); it is transformed as the
  value half way to the next value the statistic can take at this ``n`` without ties (a
  continuity correction: ``1 - 6 / (n**3 - n)`` for rho, ``1 - 2 / (n (n - 1))`` for tau),
  and the interval runs from that bound to the observed ``+-1``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _sp

__all__ = [
    "EXACT_MAX_N",
    "RankCorrelation",
    "describe_rank_correlation",
    "kendall",
    "rank_correlation",
    "spearman",
]

EXACT_MAX_N = 8
"""Up to this many pairs the null distribution is enumerated (8! = 40,320 orderings)."""

_STATISTICS = {"spearman": "Spearman's rho", "kendall": "Kendall's tau"}
_CHUNK = 2048  # orderings scored at once (bounds memory for Kendall's n(n-1)/2 pair signs)


def _fmt(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


@dataclass(frozen=True)
class RankCorrelation:
    """A rank correlation with its confidence interval and two-sided p over ``n`` pairs.

    ``rho`` is the coefficient of ``statistic`` (Spearman's rho or Kendall's tau-b; the name
    ``rho`` is kept for both). ``p_method`` says where p came from: ``"exact"`` (all
    orderings), ``"permutation"`` (random orderings) or ``""`` (no p: too few pairs).
    """

    rho: float
    low: float
    high: float
    p: float
    n: int
    statistic: str = "spearman"
    p_method: str = ""

    @property
    def name(self) -> str:
        """``Spearman's rho`` or ``Kendall's tau``."""
        return _STATISTICS.get(self.statistic, self.statistic)

    def __str__(self) -> str:
        """``0.40 [-0.55, 0.89] (n=5, exact p=0.52)``; NaN parts print as ``-``."""
        p_text = f"p={_fmt(self.p, 2)}" if math.isnan(self.p) or self.p >= 0.01 else "p<0.01"
        if self.p_method:
            p_text = f"{self.p_method} {p_text}"
        return (
            f"{_fmt(self.rho, 2)} [{_fmt(self.low, 2)}, {_fmt(self.high, 2)}] "
            f"(n={self.n}, {p_text})"
        )


def _paired(x: ArrayLike, y: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    if xa.shape != ya.shape:
        raise ValueError(f"x has {xa.size} values and y has {ya.size}: they must be paired")
    xa, ya = xa.ravel(), ya.ravel()
    keep = ~(np.isnan(xa) | np.isnan(ya))
    return xa[keep], ya[keep]


def _centred_ranks(a: np.ndarray) -> np.ndarray:
    """``2 * rank - (n + 1)`` with average ranks: integers, summing to zero."""
    return (2.0 * _sp.rankdata(a)).astype(np.int64) - (a.size + 1)


def _orderings(n: int, exact_max_n: int, n_resamples: int, seed: int):
    """Chunks of index orderings of ``n`` items: all of them, or random ones (see module)."""
    if n <= exact_max_n:
        every = itertools.permutations(range(n))
        while chunk := list(itertools.islice(every, _CHUNK)):
            yield np.asarray(chunk, dtype=np.int64)
        return
    rng = np.random.default_rng(seed)
    left = n_resamples
    while left > 0:
        size = min(left, _CHUNK)
        yield rng.permuted(np.tile(np.arange(n), (size, 1)), axis=1)
        left -= size


def _null_p(observed: int, scores, exact: bool, n_resamples: int) -> float:
    """Two-sided p from the integer statistic of every ordering (``scores``: chunks)."""
    hits = total = 0
    for s in scores:
        hits += int(np.count_nonzero(np.abs(s) >= abs(observed)))
        total += s.size
    return hits / total if exact else (1 + hits) / (1 + n_resamples)


def _fisher_interval(
    r: float, n: int, variance: float, perfect: float, confidence: float
) -> tuple[float, float]:
    """Fisher-z interval of ``r`` with ``variance`` of atanh(r); ``perfect``: |r|=1 stand-in."""
    if abs(r) == 1.0:
        z = math.atanh(perfect)
        low = math.tanh(z - float(_sp.norm.ppf(0.5 + confidence / 2.0)) * math.sqrt(variance))
        return (low, 1.0) if r > 0 else (-1.0, -low)
    z = math.atanh(float(np.clip(r, -1.0 + 1e-15, 1.0 - 1e-15)))
    half = float(_sp.norm.ppf(0.5 + confidence / 2.0)) * math.sqrt(variance)
    return math.tanh(z - half), math.tanh(z + half)


def _check(confidence: float, exact_max_n: int, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if not 0 <= exact_max_n <= 10:
        raise ValueError(f"exact_max_n must lie in 0..10 (10! orderings), got {exact_max_n}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")


def spearman(
    x: ArrayLike,
    y: ArrayLike,
    *,
    confidence: float = 0.95,
    exact_max_n: int = EXACT_MAX_N,
    n_resamples: int = 9999,
    seed: int = 0,
) -> RankCorrelation:
    """Spearman's rho of ``x`` and ``y`` with an exact or permutation p (see the module).

    Pairs with a NaN on either side are dropped. With fewer than three pairs, or when one side
    is constant (no ranking), rho, the interval and p are NaN. rho is the Pearson correlation
    of the average ranks (as ``scipy.stats.spearmanr``). Examples: ``n = 3`` in perfect order
    gives rho = 1, p = 1/3 and the interval ``[-1, 1]``; ``n = 5`` in perfect order gives
    p = 2/120 and a bounded interval below 1.
    """
    _check(confidence, exact_max_n, n_resamples)
    xa, ya = _paired(x, y)
    n = int(xa.size)
    if n < 3 or bool(np.all(xa == xa[0])) or bool(np.all(ya == ya[0])):
        return RankCorrelation(math.nan, math.nan, math.nan, math.nan, n, "spearman")
    cx, cy = _centred_ranks(xa), _centred_ranks(ya)
    observed = int(cx @ cy)
    rho = observed / math.sqrt(float(cx @ cx) * float(cy @ cy))
    rho = max(-1.0, min(1.0, rho))
    if np.array_equal(cx, cy) or np.array_equal(cx, -cy):
        rho = math.copysign(1.0, observed)  # identical rank vectors: exactly +-1
    exact = n <= exact_max_n
    scores = (cy[o] @ cx for o in _orderings(n, exact_max_n, n_resamples, seed))
    p = _null_p(observed, scores, exact, n_resamples)
    if n == 3:
        low, high = -1.0, 1.0
    else:
        variance = (1.0 + rho * rho / 2.0) / (n - 3)
        low, high = _fisher_interval(rho, n, variance, 1.0 - 6.0 / (n**3 - n), confidence)
    method = "exact" if exact else "permutation"
    return RankCorrelation(rho, low, high, p, n, "spearman", method)


def kendall(
    x: ArrayLike,
    y: ArrayLike,
    *,
    confidence: float = 0.95,
    exact_max_n: int = EXACT_MAX_N,
    n_resamples: int = 9999,
    seed: int = 0,
) -> RankCorrelation:
    """Kendall's tau-b of ``x`` and ``y`` with an exact or permutation p (see the module).

    ``tau_b = S / sqrt(T_x * T_y)`` with ``S`` the concordant minus discordant pairs and
    ``T`` the pairs not tied on that side (as ``scipy.stats.kendalltau``). NaN pairs are
    dropped; fewer than three pairs or a constant side give NaN. Three pairs in perfect order
    give tau = 1 and p = 1/3, as for Spearman.
    """
    _check(confidence, exact_max_n, n_resamples)
    xa, ya = _paired(x, y)
    n = int(xa.size)
    if n < 3 or bool(np.all(xa == xa[0])) or bool(np.all(ya == ya[0])):
        return RankCorrelation(math.nan, math.nan, math.nan, math.nan, n, "kendall")
    i, j = np.triu_indices(n, k=1)
    sx = np.sign(xa[i] - xa[j]).astype(np.int64)
    sy = np.sign(ya[i] - ya[j]).astype(np.int64)
    observed = int(sx @ sy)
    tx, ty = int(np.abs(sx).sum()), int(np.abs(sy).sum())
    tau = observed / math.sqrt(float(tx) * float(ty))
    if abs(observed) == tx == ty:
        tau = math.copysign(1.0, observed)
    exact = n <= exact_max_n
    scores = (
        np.sign(ya[o[:, i]] - ya[o[:, j]]).astype(np.int64) @ sx
        for o in _orderings(n, exact_max_n, n_resamples, seed)
    )
    p = _null_p(observed, scores, exact, n_resamples)
    if n <= 4:
        low, high = -1.0, 1.0
    else:
        low, high = _fisher_interval(tau, n, 0.437 / (n - 4), 1.0 - 2.0 / (n * (n - 1)), confidence)
    method = "exact" if exact else "permutation"
    return RankCorrelation(tau, low, high, p, n, "kendall", method)


def rank_correlation(
    x: ArrayLike, y: ArrayLike, *, statistic: str = "spearman", **options: object
) -> RankCorrelation:
    """:func:`spearman` or :func:`kendall` by name; ``options`` go to that function."""
    functions = {"spearman": spearman, "kendall": kendall}
    if statistic not in functions:
        raise ValueError(
            f"unknown rank statistic {statistic!r}; known: {', '.join(sorted(functions))}"
        )
    return functions[statistic](x, y, **options)  # type: ignore[arg-type]


def describe_rank_correlation(rc: RankCorrelation) -> str:
    """One plain-English sentence on what ``rc`` means for the search.

    A low value is a finding about the search (its fidelity does not rank candidates as full
    training does), not an error, so this always returns a sentence. Bands: a coefficient
    >= 0.7 with an interval above 0 predicts well; 0.3 to 0.7 with an interval above 0 predicts
    weakly; below 0.3, or an interval that includes 0, does not predict.
    """
    if rc.n < 3:
        return (
            f"Too few candidates to say (n={rc.n}) whether the search's ranking "
            "predicts the final ranking."
        )
    if math.isnan(rc.rho):
        return (
            "One side scored every candidate the same, so there is no ranking to compare: "
            "too few distinct candidates to say whether the search's ranking predicts the "
            "final ranking."
        )
    head = f"{rc.name} = {rc}:"
    if rc.low > 0 and rc.rho >= 0.7:
        return f"{head} the search's ranking predicts the final ranking well."
    if rc.low > 0 and rc.rho >= 0.3:
        return (
            f"{head} the search's ranking predicts the final ranking only weakly; "
            "treat candidates close in the search as ties."
        )
    reason = "the coefficient is below 0.3" if rc.rho < 0.3 else "its interval includes 0"
    return (
        f"{head} the search's ranking does not predict the final ranking ({reason}); "
        "the search fidelity is too short or too noisy to rank candidates; "
        "lengthen fidelity or add seeds."
    )
