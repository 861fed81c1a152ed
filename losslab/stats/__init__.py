"""Pure statistics on small samples: bootstrap intervals, paired tests, Holm, rank correlations.

Used by the search (racing at the top fidelity, a study's verdict) and by the analysis after a
study (``losslab compare``, ``losslab calibrate``). NumPy and SciPy only: nothing of losslab.

* :mod:`losslab.stats.paired`: means with bootstrap intervals (flat and hierarchical), paired
  tests (Wilcoxon signed-rank, sign-flip permutation), Holm's correction, significance marks.
* :mod:`losslab.stats.ranks`: Spearman's rho and Kendall's tau-b with exact small-n p-values.
"""

from __future__ import annotations

from losslab.stats.paired import (
    BETTER,
    WORSE,
    Interval,
    PairedTest,
    hierarchical_interval,
    holm,
    mean_interval,
    paired_test,
    significance_mark,
)
from losslab.stats.ranks import (
    EXACT_MAX_N,
    RankCorrelation,
    describe_rank_correlation,
    kendall,
    rank_correlation,
    spearman,
)

__all__ = [
    "BETTER",
    "EXACT_MAX_N",
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
