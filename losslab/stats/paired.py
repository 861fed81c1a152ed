"""Paired statistics: intervals, paired tests, Holm correction (and rank agreement, re-exported).

A study's verdict and racing (``losslab.search``) compare entrants with these; ``losslab
compare`` re-trains the best candidates of a study and the hand-designed baselines
over a few seeds (typically 3-5) and reports, per class and for the objective:

* a mean with a bootstrap confidence interval (:func:`mean_interval`), or with a
  hierarchical one that resamples seeds, then cases within seeds (:func:`hierarchical_interval`);
* a paired comparison of each candidate against each baseline over the same seeds and test
  cases (:func:`paired_test`), whose p-values are Holm-corrected across classes
  (:func:`holm`) and shown as a mark (:func:`significance_mark`);
* how well the search's ranking of the candidates predicts their re-trained ranking
  (:func:`spearman`, :func:`kendall`, :func:`describe_rank_correlation`, from
  :mod:`losslab.stats.ranks`: exact permutation p-values at small n).

Resampling is SciPy's (``scipy.stats.bootstrap``, ``wilcoxon``, ``permutation_test``),
seeded so that the same inputs give the same report. NaN values mean "not measured" (a class
absent from a test case) and are dropped, never treated as zero.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as _sp

from losslab.stats.ranks import (
    RankCorrelation,
    describe_rank_correlation,
    kendall,
    rank_correlation,
    spearman,
)

__all__ = [
    "BETTER",
    "WORSE",
    "Interval",
    "PairedTest",
    "RankCorrelation",
    "describe_rank_correlation",
    "hierarchical_interval",
    "holm",
    "kendall",
    "mean_interval",
    "paired_test",
    "rank_correlation",
    "significance_mark",
    "spearman",
]

BETTER, WORSE = "▲", "▼"
"""Marks of a significant difference (after Holm) in favour of, or against, a candidate."""

_PAIRED_METHODS = ("wilcoxon", "permutation")


def _fmt(value: float, digits: int) -> str:
    """A number with ``digits`` decimals, or ``-`` for NaN (a cell with nothing to show)."""
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _finite_1d(values: ArrayLike) -> np.ndarray:
    """The values as a flat float array without NaNs (NaN = not measured, e.g. absent class)."""
    arr = np.asarray(values, dtype=float).ravel()
    return arr[~np.isnan(arr)]


def _check_confidence(confidence: float) -> None:
    """Reject a confidence level outside (0, 1), which SciPy would turn into a NaN interval."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval over ``n`` values (NaN parts: nothing to show)."""

    mean: float
    low: float
    high: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``mean [low, high]`` with ``digits`` decimals; NaN parts print as ``-``.

        With no values at all (``n == 0``) the whole cell is ``-``, so that tables of classes
        absent from every case stay readable.
        """
        if self.n == 0:
            return "-"
        return f"{_fmt(self.mean, digits)} [{_fmt(self.low, digits)}, {_fmt(self.high, digits)}]"

    def __str__(self) -> str:
        """``0.812 [0.790, 0.833]``: three decimals, see :meth:`format`."""
        return self.format(3)


def mean_interval(
    values: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> Interval:
    """The mean of ``values`` with a bootstrap confidence interval (BCa, SciPy).

    NaN values are dropped first (a class absent from a case has no score). With no values the
    mean and the bounds are NaN. With one value, or when all values are equal, there is no
    spread to resample, so the interval is the point ``[mean, mean]``.

    Otherwise the interval is ``scipy.stats.bootstrap`` with the bias-corrected and
    accelerated (BCa) method, seeded by ``seed`` so the report is reproducible. BCa needs the
    jackknife acceleration, which can be undefined on degenerate or tiny samples (SciPy then
    warns and returns NaN); in that case the percentile bootstrap of the same resamples is
    used instead, without the warning reaching the user.
    """
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    x = _finite_1d(values)
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    if bool(np.all(x == x[0])):  # also n == 1; exact value, np.mean would round
        value = float(x[0])
        return Interval(value, value, value, n)
    mean = float(np.mean(x))

    def bootstrap(method: str) -> tuple[float, float]:
        result = _sp.bootstrap(
            (x,),
            np.mean,
            confidence_level=confidence,
            n_resamples=n_resamples,
            method=method,
            random_state=np.random.default_rng(seed),
        )
        ci = result.confidence_interval
        return float(ci.low), float(ci.high)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        low, high = bootstrap("BCa")
    if caught or not (math.isfinite(low) and math.isfinite(high)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            low, high = bootstrap("percentile")
    return Interval(mean, low, high, n)


def hierarchical_interval(
    groups: Sequence[ArrayLike],
    *,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> Interval:
    """The mean of values grouped by seed, with a two-level (hierarchical) bootstrap interval.

    The test cases of one seed are scored by the same trained network, so they are not
    independent of each other; resampling (seed, case) values as one flat sample understates
    the spread between seeds. Each resample here draws as many seeds as there are, with
    replacement, then within each drawn seed as many of its values as it has, with
    replacement; its statistic is the mean of all the values drawn. The interval is the
    percentile interval of ``n_resamples`` resamples seeded by ``seed`` (Davison & Hinkley
    1997, section 3.8; Saravanan, Berman & Sober 2020).

    ``groups[g]`` holds the values of seed ``g``; NaNs are dropped and so are groups left
    empty. The mean is that of all values (as :func:`mean_interval`'s); with one group the
    interval is the case bootstrap of that group, with all values equal it is the point.
    """
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    kept = [v for v in (_finite_1d(g) for g in groups) if v.size]
    n = sum(int(v.size) for v in kept)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    values = np.concatenate(kept)
    if bool(np.all(values == values[0])):
        return Interval(float(values[0]), float(values[0]), float(values[0]), n)
    sizes = np.array([v.size for v in kept])
    table = np.zeros((len(kept), int(sizes.max())))
    for g, v in enumerate(kept):
        table[g, : v.size] = v
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, n_resamples, 1024):
        size = min(1024, n_resamples - start)
        drawn = rng.integers(0, len(kept), (size, len(kept)))  # seeds
        counts = sizes[drawn]  # [size, seeds]
        picks = np.floor(rng.random((size, len(kept), table.shape[1])) * counts[..., None])
        used = np.arange(table.shape[1]) < counts[..., None]  # a seed draws its own count
        drawn_values = table[drawn[..., None], picks.astype(np.int64)]
        means.append((drawn_values * used).sum((1, 2)) / used.sum((1, 2)))
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(np.concatenate(means), [tail, 100.0 - tail])
    return Interval(float(np.mean(values)), float(low), float(high), n)


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of ``a`` against ``b``: the mean difference and a two-sided p."""

    difference: Interval
    p: float
    method: str
    n: int


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of the paired differences, vectorised for ``scipy.stats.permutation_test``."""
    return np.mean(x - y, axis=axis)


def paired_test(
    a: ArrayLike,
    b: ArrayLike,
    *,
    method: str = "wilcoxon",
    confidence: float = 0.95,
    seed: int = 0,
    n_resamples: int = 9999,
    groups: ArrayLike | None = None,
) -> PairedTest:
    """Paired two-sided test of ``a`` against ``b`` and the bootstrap interval of ``a - b``.

    ``a[i]`` and ``b[i]`` must be the same unit measured twice (same seed, same test case), so
    both have the same shape; pairs with a NaN on either side are dropped and ``n`` counts the
    pairs left. ``difference`` is :func:`mean_interval` of ``a - b`` (positive: ``a`` better
    when higher is better), or :func:`hierarchical_interval` when ``groups`` (the seed of each
    pair, same shape) is given.

    Methods:

    * ``"wilcoxon"``: ``scipy.stats.wilcoxon`` (signed ranks): the exact null distribution up
      to 50 pairs without ties or zero differences; with ties or zeros, the sign-flip
      permutation null of the signed-rank statistic (all ``2**n`` sign patterns up to 13 pairs,
      ``n_resamples`` seeded ones up to 50), where the normal approximation is off at small n;
      above 50 pairs the normal approximation. When every difference is zero there is no
      evidence either way and p is 1.0 (SciPy would warn).
    * ``"permutation"``: the paired sign-flip permutation test of the mean difference,
      ``scipy.stats.permutation_test(..., permutation_type="samples")``, exact (all ``2**n``
      sign patterns) when ``2**n <= n_resamples``, else ``n_resamples`` random ones seeded by
      ``seed``. A single pair has two sign patterns, ``+d`` and ``-d``, so p is 1.0.

    With no pairs p is NaN.

    Power: with 3 seeds and one score per seed the smallest possible two-sided exact Wilcoxon
    p is ``2 / 2**3 = 0.25``, so no difference can ever be significant at 0.05. Pairing by
    (seed, test case) is what makes a difference detectable; the caller pairs by (seed, case).
    """
    if method not in _PAIRED_METHODS:
        raise ValueError(
            f"unknown paired test method {method!r}; known: {', '.join(_PAIRED_METHODS)}"
        )
    _check_confidence(confidence)
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    if xa.shape != xb.shape:
        raise ValueError(
            f"paired samples differ in length: a has {xa.size} values {xa.shape}, "
            f"b has {xb.size} values {xb.shape}"
        )
    xa, xb = xa.ravel(), xb.ravel()
    keep = ~(np.isnan(xa) | np.isnan(xb))
    xa, xb = xa[keep], xb[keep]
    n = int(xa.size)
    options = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    if groups is None:
        difference = mean_interval(xa - xb, **options)
    else:
        labels = np.asarray(groups).ravel()
        if labels.size != keep.size:
            raise ValueError(f"groups has {labels.size} values for {keep.size} pairs")
        labels = labels[keep]
        difference = hierarchical_interval(
            [(xa - xb)[labels == g] for g in dict.fromkeys(labels.tolist())], **options
        )
    if n == 0:
        p = math.nan
    elif bool(np.all(xa == xb)):
        p = 1.0
    elif method == "wilcoxon":
        p = _wilcoxon_p(xa - xb, n_resamples, seed)
    elif n == 1:
        p = 1.0
    else:
        result = _sp.permutation_test(
            (xa, xb),
            _mean_difference,
            vectorized=True,
            permutation_type="samples",
            alternative="two-sided",
            n_resamples=n_resamples,
            random_state=np.random.default_rng(seed),
        )
        p = float(result.pvalue)
    return PairedTest(difference=difference, p=p, method=method, n=n)


def _wilcoxon_p(d: np.ndarray, n_resamples: int, seed: int) -> float:
    """Two-sided signed-rank p of the differences ``d`` (see :func:`paired_test`)."""
    nonzero = np.abs(d[d != 0])
    tied = np.unique(nonzero).size < d.size  # a zero difference counts as a tie
    method: str | _sp.PermutationMethod = "auto"  # exact; with ties, all 2**n signs up to 13
    if tied and 13 < d.size <= 50:
        method = _sp.PermutationMethod(
            n_resamples=n_resamples, random_state=np.random.default_rng(seed)
        )
    return float(_sp.wilcoxon(d, alternative="two-sided", method=method).pvalue)


def holm(p_values: Sequence[float] | ArrayLike) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    Holm controls the family-wise error over the ``m`` tests (here: the classes of one
    candidate-baseline comparison) and is uniformly more powerful than Bonferroni. With the
    p-values sorted ascending, ``adj_(i) = max_{j <= i} (m - j) * p_(j)`` (0-based ``j``),
    capped at 1. NaN entries (no test: e.g. a class without pairs) stay NaN and do not count
    in ``m``.
    """
    p = np.asarray(p_values, dtype=float).ravel()
    adjusted = np.full(p.shape, math.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for j, index in enumerate(order):
        running = max(running, min(1.0, (m - j) * float(p[index])))
        adjusted[index] = running
    return [float(v) for v in adjusted]


def significance_mark(adjusted_p: float, difference: float, alpha: float = 0.05) -> str:
    """``BETTER`` or ``WORSE`` when the (Holm-adjusted) p is below ``alpha``, else ``""``.

    The direction is the sign of ``difference`` (candidate minus baseline, higher is better);
    a NaN p or difference, or a zero difference, gives no mark.
    """
    if math.isnan(adjusted_p) or math.isnan(difference) or adjusted_p >= alpha:
        return ""
    if difference > 0:
        return BETTER
    if difference < 0:
        return WORSE
    return ""
