"""The baseline suite: hand-designed candidates trained on the same data, network and seeds under
one MLflow parent run, and compared per class in the layout of Table 1 of Willoughby and Voiculescu (2024).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.table import Table

from losslab.classwise import nanmean
from losslab.config import SuiteConfig
from losslab.console import ProgressHook, class_table, split_title
from losslab.data import SegmentationDataset, build_dataset
from losslab.search.evaluator import Evaluator
from losslab.search.fidelity import Fidelity
from losslab.search.objective import Objective
from losslab.tracking.tracker import Tracker
from losslab.training import Result

__all__ = ["SuiteResult", "failures", "run_suite", "table_1"]


@dataclass
class SuiteResult:
    """Every candidate's results (one per seed), the data, and the parent MLflow run."""

    config: SuiteConfig
    dataset: SegmentationDataset
    results: dict[str, list[Result]]
    parent_run_id: str
    tracker: Tracker

    def class_dice(self, name: str) -> list[float]:
        """Test Dice per class, averaged over the seeds whose run succeeded (NaN if none)."""
        ok = [r for r in self.results[name] if r.ok]
        if not ok:
            return [math.nan] * self.dataset.num_classes
        columns = zip(*(r.test_metrics["dice"] for r in ok))
        return [nanmean(list(col)) for col in columns]


def run_suite(config: SuiteConfig, *, progress: bool = True) -> SuiteResult:
    """Train every candidate for every seed; a failing candidate is recorded and the suite goes on.

    Each run goes through the study's :class:`Evaluator` (one nested MLflow run per candidate
    and seed, tagged with its evaluation key), at the suite's own train config.
    """
    dataset = build_dataset(config.data)
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    parent = tracker.start_run("baselines", tags={"backend": "baselines", "kind": "suite"})
    tracker.log_params(
        parent, {"data.fingerprint": dataset.fingerprint, "seeds": list(config.seeds)}
    )
    evaluator = Evaluator(
        dataset,
        config.train,
        Fidelity(),
        Objective(),
        tracker=tracker,
        parent_run_id=parent,
        tags={"backend": "baselines"},
    )
    results: dict[str, list[Result]] = {}
    try:
        for candidate in config.candidates:
            for seed in config.seeds:
                hooks = []
                if progress:
                    hooks.append(ProgressHook(description=f"{candidate.name} (seed {seed})"))
                evaluation = evaluator.evaluate(
                    candidate,
                    seed=seed,
                    hooks=hooks,
                    origin=f"baseline {candidate.name} seed {seed}",
                )
                results.setdefault(candidate.name, []).append(evaluation.result)
    finally:
        tracker.end_run(parent, "FINISHED" if len(results) == len(config.candidates) else "KILLED")
    return SuiteResult(config, dataset, results, parent, tracker)


def table_1(suite: SuiteResult) -> Table:
    """Classes in rows with their voxel share, candidates in columns, the mean at the top.

    The title says which split and how many cases and seeds the values cover. With one seed no
    class is marked (a single run's difference says nothing); with several, a class whose mean
    Dice beats the reference candidate's is marked ``+`` (green), as in Table 1 of Willoughby and Voiculescu (2024).
    """
    shares = suite.dataset.foreground_shares()
    columns = {c.name: suite.class_dice(c.name) for c in suite.config.candidates}
    seeds = len(suite.config.seeds)
    title = split_title("Test Dice per class", suite.dataset, seeds)
    reference = suite.config.reference if seeds > 1 else None
    if reference is not None:
        title += f"; +: above the mean of {reference}"
    return class_table(title, suite.dataset.class_names, shares, columns, reference)


def failures(suite: SuiteResult) -> list[tuple[str, str]]:
    """(candidate, reason) of every run that did not succeed."""
    return [(n, r.reason) for n, rs in suite.results.items() for r in rs if not r.ok]
