"""``MLflowHook``: one evaluation recorded as one MLflow run through a
:class:`~losslab.tracking.tracker.Tracker` (what the run holds: see ``losslab.tracking.tracker``).

Few writes per run, each a database commit: the run, its parameters and ``candidate.json`` as
it starts; the epochs' metrics at most once every ``flush_seconds`` (an epoch that ends later
than that after the last write is written at once, as every epoch of minutes is; faster ones
join the next write, each with its own step and time); at the end every file (``history.json``,
the per-class table and CSV, the plots) in one upload, then the final metrics, the epochs not
written yet and the tags in one batch (the tags after the metrics: a run whose ``status`` tag
says it has its result has all of it), and the run's end.
"""

from __future__ import annotations

import contextlib
import math
import time
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
from losslab.tracking.tracker import MetricPoint
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
    flush_seconds = 5.0  # the epochs' metrics are written at most this often (module docstring)

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
        self._pending: list[MetricPoint] = []  # epochs not written yet
        self._written = 0.0  # time.monotonic() of the last write of epochs

    def start_run(self) -> str:
        if self.run_id is None:
            tags = {"candidate.key": self.candidate.key, "status": "running", **self.tags}
            self.run_id = self.tracker.start_run(
                self.run_name or run_name("", self.candidate),
                parent_run_id=self.parent_run_id,
                tags=tags,
            )
            self.created(self.run_id)
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
            self._written = time.monotonic()
        return self.run_id

    def created(self, run_id: str) -> None:
        """Called as soon as the run exists, before anything is logged to it (nothing here)."""

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
        run_id = self.start_run()
        self._pending.append(MetricPoint(metrics, record.epoch, int(time.time() * 1000)))
        if time.monotonic() - self._written >= self.flush_seconds:
            self.tracker.log_batch(run_id, self._pending)
            self._pending, self._written = [], time.monotonic()

    def on_train_end(self, state: TrainState | None, result: Result) -> None:
        run_id = self.start_run()
        metrics = summary_metrics(result)  # per class: test_per_class.json
        if self.final_metrics is not None:
            metrics.update(self.final_metrics(result))
        points = [*self._pending, MetricPoint(metrics, len(result.history))]
        points += [MetricPoint(values, step) for step, values in series_by_step(result)]
        self._pending = []
        files = {path: text.encode() for path, text in result.artifacts.items()}
        files["history.json"] = result.to_json().encode()
        tables = {}
        if result.test_metrics:
            files["per_class.csv"] = per_class_csv(result).encode()
            tables["test_per_class.json"] = per_class_table(result, self.shares)
        files.update(self._plots(result))
        tags = self.tracker.log_files(run_id, files, tables)  # one upload
        tags.update(result.tags)
        tags.update(status=result.status, device=result.device)
        if result.reason:
            tags["failure_reason" if result.status == "failed" else "prune_reason"] = result.reason
        if result.failed_step is not None:
            tags["failed_step"] = str(result.failed_step)
        self.tracker.log_batch(run_id, points, tags)
        self.tracker.end_run(run_id, _STATUS.get(result.status, "FAILED"))

    def _plots(self, result: Result) -> dict[str, bytes]:
        """Per-class validation Dice, class and term weights, logit margins (``plots/``)."""
        from losslab.plots import evaluation_plots

        return evaluation_plots(result, term_labels(self.candidate.terms))  # {}: LOSSLAB_PLOTS=0
