"""``MLflowHook``: one evaluation recorded as one MLflow run through a
:class:`~losslab.tracking.tracker.Tracker` (what the run holds: see ``losslab.tracking.tracker``)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from losslab import __version__
from losslab.losses.naming import term_labels
from losslab.tracking.format import (
    epoch_metrics,
    per_class_csv,
    per_class_table,
    run_name,
    series_by_step,
    summary_metrics,
)
from losslab.training.hooks import Hook

if TYPE_CHECKING:
    from losslab.candidate import Candidate
    from losslab.tracking.tracker import Tracker
    from losslab.training.config import TrainConfig
    from losslab.training.result import EpochRecord, Result
    from losslab.training.state import TrainState

__all__ = ["MLflowHook"]

_STATUS = {"ok": "FINISHED", "failed": "FAILED", "pruned": "KILLED", "interrupted": "KILLED"}


class MLflowHook(Hook):
    """Records one evaluation as one MLflow run (created even if the run fails in set-up).

    ``epoch_metrics`` and ``final_metrics`` add metrics of the caller's (a study's objective) to
    each epoch's and to the final ones. ``run_name`` names the run (default: the candidate's
    name, else its description: ``tracking.format.run_name``).
    """

    population_safe = True  # one run per member, from its own state (losslab.training.population)

    def __init__(
        self,
        tracker: Tracker,
        candidate: Candidate,
        config: TrainConfig,
        *,
        data_fingerprint: str,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        extra_params: Mapping[str, Any] | None = None,
        epoch_metrics: Callable[[EpochRecord], Mapping[str, float]] | None = None,
        final_metrics: Callable[[Result], Mapping[str, float]] | None = None,
        run_name: str | None = None,
    ):
        self.tracker = tracker
        self.run_name = run_name
        self.shares: list[float] | None = None  # voxel share per class, from the dataset
        self.candidate = candidate
        self.config = config
        self.data_fingerprint = data_fingerprint
        self.parent_run_id = parent_run_id
        self.tags = dict(tags or {})
        self.extra_params = dict(extra_params or {})
        self.epoch_metrics = epoch_metrics
        self.final_metrics = final_metrics
        self.run_id: str | None = None

    def start_run(self) -> str:
        if self.run_id is None:
            tags = {"candidate.key": self.candidate.key, "status": "running", **self.tags}
            self.run_id = self.tracker.start_run(
                self.run_name or run_name("", self.candidate),
                parent_run_id=self.parent_run_id,
                tags=tags,
            )
            params = {
                **self.candidate.flat_params(),
                **{f"train.{k}": v for k, v in self.config.to_dict().items()},
                "seed": self.config.seed,
                "data.fingerprint": self.data_fingerprint,
                "losslab.version": __version__,
                **self.extra_params,
            }
            self.tracker.log_params(self.run_id, params)
            self.tracker.log_text(self.run_id, self.candidate.to_json(), "candidate.json")
            self._log_networks()
        return self.run_id

    def _log_networks(self) -> None:
        """The file of each learned loss network of the candidate, under ``lossnets/`` (one
        that cannot be found is not logged: training fails, naming it)."""
        from losslab.losses.learned_term import LearnedTerm

        for term in self.candidate.terms:
            if isinstance(term, LearnedTerm):
                with contextlib.suppress(FileNotFoundError):
                    self.tracker.log_artifact(self.run_id, term.path(), "lossnets")

    def on_train_start(self, state: TrainState) -> None:
        with contextlib.suppress(Exception):  # the table goes without its voxel share
            self.shares = [math.nan, *state.dataset.foreground_shares()]
        self.start_run()

    def on_epoch_end(self, state: TrainState, record: EpochRecord) -> None:
        metrics = epoch_metrics(
            state.dataset.class_names, record, term_labels(self.candidate.terms)
        )
        if self.epoch_metrics is not None:
            metrics.update(self.epoch_metrics(record))
        self.tracker.log_metrics(self.start_run(), metrics, step=record.epoch)

    def on_train_end(self, state: TrainState | None, result: Result) -> None:
        run_id = self.start_run()
        metrics = summary_metrics(result)  # per class: test_per_class.json
        if self.final_metrics is not None:
            metrics.update(self.final_metrics(result))
        self.tracker.log_metrics(run_id, metrics, step=len(result.history))
        for step, values in series_by_step(result):
            self.tracker.log_metrics(run_id, values, step=step)
        for path, text in result.artifacts.items():
            self.tracker.log_text(run_id, text, path)
        tags = {**result.tags, "status": result.status, "device": result.device}
        if result.reason:
            tags["failure_reason" if result.status == "failed" else "prune_reason"] = result.reason
        if result.failed_step is not None:
            tags["failed_step"] = str(result.failed_step)
        self.tracker.set_tags(run_id, tags)
        self.tracker.log_text(run_id, result.to_json(), "history.json")
        if result.test_metrics:
            self.tracker.log_text(run_id, per_class_csv(result), "per_class.csv")
            table = per_class_table(result, self.shares)
            self.tracker.log_table(run_id, table, "test_per_class.json")
        self._log_plots(run_id, result)
        self.tracker.end_run(run_id, _STATUS.get(result.status, "FAILED"))

    def _log_plots(self, run_id: str, result: Result) -> None:
        """Per-class validation Dice, class and term weights, logit margins (``plots/``)."""
        from losslab.plots import evaluation_plots

        plots = evaluation_plots(result, term_labels(self.candidate.terms))  # {}: LOSSLAB_PLOTS=0
        if plots:
            self.tracker.log_files(run_id, plots)
