"""Running a study: the loop, the budget, MLflow's parent run, baselines, resume.

``run_study(config)`` opens (or resumes) the backend's durable state, finds or creates the
study's MLflow parent run (tag ``losslab.study``), evaluates the baselines named in the config at
the study's fidelity and seed, then lets the backend propose and evaluate candidates until the
budget is spent: ``trials`` finished in the whole study (across resumes and workers), ``minutes``
of this invocation (an evaluation still running when they end is stopped, recorded as
interrupted and re-queued: see ``deadline.py``). Every evaluation goes through one
:class:`Evaluator` whose cache lives in the backend's storage, so rerunning the same command
continues the study without repeating a finished evaluation. The best trial's run is tagged
``losslab.best``. The study is checked against its data before any store is created.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape

from losslab import __version__
from losslab.candidate import Candidate
from losslab.data import SegmentationDataset, build_dataset
from losslab.report import StudyProgress
from losslab.search.backend import SearchBackend, TrialRecord
from losslab.search.deadline import DeadlineHook, TimeUp
from losslab.search.evaluator import Evaluation, Evaluator
from losslab.search.optuna_backend import OptunaBackend
from losslab.search.storage import default_storage_url, is_stale
from losslab.search.study_checks import check_loaded_data, check_study
from losslab.search.study_config import StudyConfig
from losslab.tracking import Tracker
from losslab.training import Hook, Result

__all__ = ["StudyOutcome", "make_backend", "run_study"]


@dataclass
class StudyOutcome:
    """What a study holds after this invocation (all workers' trials, not only this one's)."""

    config: StudyConfig
    dataset: SegmentationDataset
    records: list[TrialRecord]
    baselines: list[Evaluation]
    results: dict[str, Result]  # eval key -> result, for the records and baselines
    parent_run_id: str
    tracker: Tracker
    storage_url: str
    trained: int = 0  # evaluations this invocation trained
    wall_time: float = 0.0
    interrupted: bool = False  # stopped by Ctrl-C or a signal
    out_of_time: bool = False  # the time budget ended during an evaluation (re-queued)
    reclaimed: list[int] = field(default_factory=list)

    def best(self, k: int | None = None) -> list[TrialRecord]:
        """Completed trials by objective, best first, one per distinct evaluation."""
        seen, ranked = set(), []
        ok = [r for r in self.records if r.status == "ok" and not math.isnan(r.value)]
        for record in sorted(ok, key=lambda r: (-r.value, r.number)):
            if record.eval_key not in seen:
                seen.add(record.eval_key)
                ranked.append(record)
        return ranked[: k or len(ranked)]

    def counts(self) -> dict[str, int]:
        counts = {"ok": 0, "pruned": 0, "failed": 0, "cached": 0}
        for record in self.records:
            counts[record.status] += 1
            counts["cached"] += bool(record.cached_from)
        return counts


def make_backend(config: StudyConfig, storage_url: str) -> SearchBackend:
    if config.backend != "optuna":
        raise ValueError(f"backend {config.backend!r} is not available")
    return OptunaBackend(
        study_name=config.name,
        storage_url=storage_url,
        space=config.space,
        objective=config.objective,
        settings=config.optuna,
        seed=config.seed,
        epochs=config.fidelity.apply(config.train).epochs,
        fingerprint=config.fingerprint,
        source=config.source,
    )


def _find_parents(tracker: Tracker, name: str) -> list:
    runs = tracker.find_runs(f"tags.`losslab.study` = '{name}' and tags.`losslab.role` = 'study'")
    return sorted(runs, key=lambda r: (r.start_time, r.run_id))


def _parent_run(tracker: Tracker, config: StudyConfig, storage_url: str) -> str:
    """The study's parent run: the existing one, else a new one. Workers that start together
    may each create one; all then keep the oldest and delete their own."""
    found = _find_parents(tracker, config.name)
    if found:
        tracker.reopen_run(found[0].run_id)
        return found[0].run_id
    run_id = tracker.start_run(
        config.name,
        tags={"losslab.study": config.name, "losslab.role": "study", "backend": config.backend},
    )
    oldest = _find_parents(tracker, config.name)[0].run_id
    if oldest != run_id:
        tracker.delete_run(run_id)
        tracker.reopen_run(oldest)
        return oldest
    tracker.log_params(
        run_id,
        {
            "study": config.name,
            "backend": config.backend,
            "storage": storage_url,
            "objective": config.objective.describe(),
            "fidelity": config.fidelity.describe(),
            "seed": config.seed,
            "budget.trials": config.budget.trials,
            "budget.minutes": config.budget.minutes,
            "fingerprint": config.fingerprint,
            "losslab.version": __version__,
        },
    )
    tracker.log_text(run_id, config.source, "study.yaml")
    return run_id


def _close_stale_runs(tracker: Tracker, parent: str, reclaimed_run_ids: Sequence[str]) -> None:
    """Mark runs of dead workers (or of reclaimed trials) KILLED, status ``interrupted``."""
    running = tracker.find_runs(
        f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'RUNNING'"
    )
    for run in running:
        if run.run_id in reclaimed_run_ids or is_stale(run.tags.get("losslab.worker", ""), None):
            tracker.set_tags(run.run_id, {"status": "interrupted"})
            tracker.end_run(run.run_id, "KILLED")


def _tag_best(tracker: Tracker, parent: str, outcome: StudyOutcome) -> None:
    best = outcome.best(1)
    if not best or not best[0].run_id:
        return
    record = best[0]
    previous = tracker.find_runs(
        f"tags.mlflow.parentRunId = '{parent}' and tags.`losslab.best` = 'true'"
    )
    for run in previous:
        if run.run_id != record.run_id:
            tracker.delete_tag(run.run_id, "losslab.best")
    tracker.set_tags(record.run_id, {"losslab.best": "true"})
    tracker.set_tags(
        parent,
        {
            "losslab.best_run_id": record.run_id,
            "losslab.best_trial": str(record.number),
            "losslab.best_candidate": record.candidate.name if record.candidate else "",
        },
    )
    tracker.log_metrics(parent, {"best_objective": record.value}, step=len(outcome.records))
    if record.candidate is not None:
        tracker.log_text(parent, record.candidate.to_json(), "best_candidate.json")


def run_study(
    config: StudyConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    console: Any = None,
    extra_hooks: Callable[[], Sequence[Hook]] | None = None,
) -> StudyOutcome:
    """Run (or resume) a study until its budget is spent; see the module docstring.

    Raises:
        ValueError: a study that does not fit its data (``ConfigError``, raised before any store
            is created), the storage cannot be opened, ``resume`` without a study to resume, or
            a study of the same name with another configuration.
        KeyboardInterrupt: after recording the interrupted evaluation (the study can resume).
    """
    start = time.perf_counter()
    deadline = None if config.budget.minutes is None else start + 60 * config.budget.minutes
    # The data first: a study that cannot run fails before it creates its stores.
    check_study(config)
    dataset = build_dataset(config.data)
    check_loaded_data(config, dataset)
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    storage_url = config.storage or default_storage_url(tracker.tracking_uri)
    backend = make_backend(config, storage_url)
    cache = backend.open(resume=resume)
    parent = _parent_run(tracker, config, storage_url)
    _close_stale_runs(tracker, parent, backend.reclaimed_runs)
    evaluator = Evaluator(
        dataset,
        config.train,
        config.fidelity,
        config.objective,
        seed=config.seed,
        tracker=tracker,
        parent_run_id=parent,
        cache=cache,
        tags={"backend": config.backend, "losslab.study": config.name},
    )
    outcome = StudyOutcome(config, dataset, [], [], {}, parent, tracker, storage_url)
    outcome.reclaimed = list(backend.reclaimed)
    display = StudyProgress(
        total=config.budget.trials, console=console, enabled=progress, title=config.name
    )
    display.advance_to(backend.used())

    def evaluate(
        candidate: Candidate,
        *,
        overrides: Mapping[str, Any],
        hooks: Sequence[Hook],
        tags: Mapping[str, str],
        origin: str,
        on_run: Callable[[str], None] | None = None,
    ) -> Evaluation:
        run_hooks = [display.run_hook(f"{origin}: {candidate.name}"), *hooks]
        if extra_hooks is not None:
            run_hooks.extend(extra_hooks())
        if deadline is not None:
            run_hooks.append(DeadlineHook(deadline, config.budget.minutes))
        return evaluator.evaluate(
            candidate, overrides=overrides, hooks=run_hooks, tags=tags, origin=origin, on_run=on_run
        )

    def time_left() -> bool:
        return deadline is None or time.perf_counter() < deadline

    def report(text: str, status: str, trial: bool) -> None:
        """A finished evaluation's line; a failure's reason is printed even without progress."""
        (display.trial_done if trial else display.line)(text)
        if status == "failed" and not display.enabled:
            display.console.print(text, highlight=False)

    status = "FINISHED"
    try:
        with display:
            for candidate in config.baselines:
                if not time_left():
                    break
                evaluation = evaluate(
                    candidate,
                    overrides={},
                    hooks=(),
                    tags={"losslab.role": "baseline"},
                    origin=f"baseline {candidate.name}",
                )
                outcome.baselines.append(evaluation)
                result = evaluation.result
                report(
                    _describe(
                        "baseline",
                        candidate.name,
                        result.status,
                        evaluation.value,
                        result.reason,
                        evaluation.cached,
                    ),
                    result.status,
                    trial=False,
                )
            while time_left() and (
                config.budget.trials is None or backend.used() < config.budget.trials
            ):
                record = backend.step(evaluate)
                name = record.candidate.name if record.candidate else "(invalid draw)"
                report(
                    _describe(
                        f"trial {record.number}",
                        name,
                        record.status,
                        record.value,
                        record.reason,
                        bool(record.cached_from),
                    ),
                    record.status,
                    trial=True,
                )
    except TimeUp as stop:  # the running evaluation is recorded as interrupted and re-queued
        outcome.out_of_time = True
        display.console.print(
            f"[yellow]{escape(str(stop))}[/]: the running evaluation was stopped and will run "
            "again when the study continues",
            highlight=False,
        )
    except KeyboardInterrupt:
        status, outcome.interrupted = "KILLED", True
        raise
    finally:
        outcome.records = backend.records()
        outcome.trained = evaluator.trained
        for evaluation in outcome.baselines:
            outcome.results[evaluation.key] = evaluation.result
        for record in outcome.records:
            if record.eval_key and record.eval_key not in outcome.results:
                hit = cache.get(record.eval_key)
                if hit is not None:
                    outcome.results[record.eval_key] = hit.result
        _tag_best(tracker, parent, outcome)
        counts = outcome.counts()
        tracker.log_metrics(parent, {f"trials_{k}": v for k, v in counts.items()}, step=0)
        tracker.end_run(parent, status)
        backend.close()
        outcome.wall_time = time.perf_counter() - start
    return outcome


def _describe(label: str, name: str, status: str, value: float, reason: str, cached: bool) -> str:
    """One line per finished evaluation, printed above the progress bars."""
    if status == "ok":
        text = f"objective {value:.4f}"
    elif status == "pruned":
        text = f"[yellow]{escape(reason)}[/]"
    else:
        text = f"[red]failed[/] ({escape(reason)})"
    return f"{label} [bold]{escape(name)}[/]: {text}" + (" [dim](cached)[/]" if cached else "")
