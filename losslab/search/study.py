"""Running a study: open, baselines, run, close.

A :class:`Study` opens its data (checked before any store exists), its MLflow parent run (tag
``losslab.study``, reused on resume), its study store (``store/ledger.py``: the ledger, the shared
evaluation cache, the backend's state) and its backend (``registry.py``, by name). It evaluates
the baselines at the study's fidelity and seed, then asks the backend for candidates and tells
it their outcomes until the budget is spent: ``trials`` counted in the whole study (across
resumes and workers; an entry is reserved in the store before it trains, so workers never
overshoot), ``minutes`` of this invocation (an evaluation still running when they end is
stopped, recorded as interrupted and queued again: see ``deadline.py``). Every evaluation goes
through one :class:`Evaluator`, so rerunning the same command continues the study without
repeating a finished evaluation. The baselines train before the clock of ``minutes`` starts
(``study_timing.py``: they are not counted in it, and are cached, so a rerun skips them).
Closing tags the best run ``losslab.best``: the best trial's, or the best baseline's when it
beats every trial (a trial a baseline beats is never called best).

This module names no backend and imports neither Optuna nor MLflow.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from losslab import interrupts
from losslab.console import StudyProgress
from losslab.data import build_dataset
from losslab.search.backend import BackendContext, Proposal, SearchBackend, replayed
from losslab.search.deadline import DeadlineHook, SignalHook, TimeUp
from losslab.search.evaluator import Evaluator
from losslab.search.registry import get_backend
from losslab.search.store import default_storage_url, study_folder
from losslab.search.store.ledger import StudyStore
from losslab.search.study_baselines import run_baselines
from losslab.search.study_batch import BatchRunner
from losslab.search.study_checks import check_loaded_data, check_study
from losslab.search.study_config import StudyConfig
from losslab.search.study_console import stop_line
from losslab.search.study_ladder import LadderRunner
from losslab.search.study_outcome import StudyOutcome
from losslab.search.study_plots import study_plots
from losslab.search.study_runs import close_stale_runs, describe_study, parent_run, tag_best
from losslab.search.study_timing import evaluation_seconds, fit_line
from losslab.search.study_verdict import log_verdict
from losslab.tracking.tracker import Tracker
from losslab.training import Hook, Trainer

__all__ = ["Study", "StudyOutcome", "run_study"]


class Study:
    """One invocation of a study (see the module docstring); :func:`run_study` drives it.

    Args:
        config: the validated study.
        progress, console: bars and lines (``console`` default: standard error).
        extra_hooks: called once per evaluation for more trainer hooks (tests stop runs so).
        trainer: builds the trainer of one evaluation (tests give a fake one).
    """

    def __init__(
        self,
        config: StudyConfig,
        *,
        progress: bool = True,
        console: Any = None,
        extra_hooks: Callable[[], Sequence[Hook]] | None = None,
        trainer: Callable[..., Any] = Trainer,
    ):
        self.config, self.extra_hooks, self.trainer = config, extra_hooks, trainer
        self.display = StudyProgress(
            total=config.budget.trials, console=console, enabled=progress, title=config.name
        )
        self.started = time.perf_counter()
        self.deadline: float | None = None  # set when the trials start (start_trials)
        self.store: StudyStore | None = None
        self.backend: SearchBackend | None = None

    # -- open --------------------------------------------------------------------------------

    def open(self, *, resume: bool = False) -> Study:
        """Data, MLflow parent run, store and backend; dead workers' entries reclaimed."""
        config = self.config
        check_study(config)  # the data first: a study that cannot run creates no store
        dataset = build_dataset(config.data)
        check_loaded_data(config, dataset)
        tracker = Tracker(config.tracking_uri, experiment=config.experiment)
        storage_url = config.storage or default_storage_url(tracker.tracking_uri)
        store = config.store(storage_url)
        seed = store.open(resume=resume, seed=config.seed)
        self.store = store
        backend_type = get_backend(config.backend)
        epochs = config.fidelity.apply(config.train).epochs
        self.backend = backend_type(
            BackendContext(
                space=config.space,
                objective=config.objective,
                settings=backend_type.check_settings(config.settings, epochs=epochs),
                seed=seed,
                epochs=epochs,
                state=store.state(config.backend),
                records=store.records,
                native=store.native,
                dataset=dataset,
                log=self._log_backend,
                train=config.fidelity.apply(config.train),
                folder=study_folder(storage_url, tracker.tracking_uri),
                study_seed=config.seed,
            )
        )
        parent = parent_run(
            tracker,
            config.name,
            tags={"backend": config.backend},
            params=config.run_params(storage_url),
            source=config.source,
        )
        close_stale_runs(tracker, parent, [r.run_id for r in store.reclaimed if r.run_id])
        self.evaluators = [  # one per rung of the fidelity ladder (one: a plain fidelity)
            Evaluator(
                dataset,
                config.train,
                rung.fidelity,
                config.objective,
                seed=config.seed,
                tracker=tracker,
                parent_run_id=parent,
                cache=store.cache,
                tags={"backend": config.backend, "losslab.study": config.name},
                trainer=self.trainer,
                max_population=config.workers.population_size(config.train),
            )
            for rung in config.ladder.rungs
        ]
        self.evaluator = self.evaluators[0]
        self.rung_baselines: dict[tuple[int, int], list] = {}  # (rung, seed) -> evaluations
        self.batches = BatchRunner(self)
        self.ladder = LadderRunner(self)
        self.outcome = StudyOutcome(config, dataset, [], [], {}, parent, tracker, storage_url)
        self.outcome.reclaimed = [r.number for r in store.reclaimed]
        self.outcome.rung_baselines = self.rung_baselines
        self.display.advance_to(store.used())
        self._known = [self._cached_result(r.eval_key) for r in store.records() if r.eval_key]
        return self

    def _cached_result(self, key: str):
        hit = self.evaluator.cache.get(key)
        return hit.result if hit is not None else None

    def say(self, text: str) -> None:
        """A line for the user, above the bars, printed with or without them, unwrapped."""
        self.display.say(text)

    def _log_backend(
        self, metrics: dict[str, float], step: int, tags: dict[str, str] | None = None
    ) -> None:
        """A backend's own figures (a GP generation's) on the study's parent run."""
        outcome = getattr(self, "outcome", None)
        if outcome is None:
            return
        if metrics:
            outcome.tracker.log_metrics(outcome.parent_run_id, metrics, step=step)
        if tags:
            outcome.tracker.set_tags(outcome.parent_run_id, tags)

    # -- evaluations -------------------------------------------------------------------------

    def evaluate(self, proposal: Proposal, origin: str, tags: dict, hooks=(), on_run=None):
        """One proposal's evaluation with the study's hooks (``origin``: ``trial 4``...)."""
        candidate = proposal.candidate
        run_hooks = [
            self.display.run_hook(f"{origin}: {candidate.name}"),
            *hooks,
            *self.common_hooks(),
        ]
        return self.evaluators[proposal.rung].evaluate(
            candidate,
            seed=self.config.seed + proposal.seed,
            overrides=proposal.overrides,
            variant=proposal.variant,
            hooks=run_hooks,
            tags=tags,
            origin=origin,
            on_run=on_run,
        )

    def common_hooks(self) -> list[Hook]:
        """The hooks every evaluation gets: the tests' extra ones, the time budget's."""
        hooks = list(self.extra_hooks()) if self.extra_hooks is not None else []
        hooks.append(SignalHook())  # a signal's stop that Python swallowed is acted on
        if self.deadline is not None:
            hooks.append(DeadlineHook(self.deadline, self.config.budget.minutes))
        return hooks

    def time_left(self) -> bool:
        """Whether the study's time budget (``budget.minutes``) has time left."""
        return self.deadline is None or time.perf_counter() < self.deadline

    def report(self, text: str, status: str, trial: bool) -> None:
        """A finished evaluation's line; a failure's reason is printed even without progress."""
        (self.display.trial_done if trial else self.display.line)(text)
        if status == "failed" and not self.display.enabled:
            self.display.console.print(text, highlight=False)

    def run_baselines(self) -> None:
        """The config's baselines at the study's fidelity and seed (cached after the first),
        before the trials' time budget starts (``study_timing``); on a ladder, at every rung,
        and at the top on every seed racers get (``study_baselines``)."""
        run_baselines(self)

    def start_trials(self) -> None:
        """Start the clock of ``budget.minutes`` and say about how many trials fit in it."""
        results = self._known + [e.result for e in self.outcome.baselines]
        seconds = evaluation_seconds(results)
        self.outcome.seconds_per_evaluation = seconds
        self.outcome.trial_minutes_started = True
        minutes = self.config.budget.minutes
        if minutes is not None:
            self.deadline = time.perf_counter() + 60 * minutes
        self.say(fit_line(seconds, minutes, self._budget_left()))

    def _budget_left(self) -> int | None:
        trials = self.config.budget.trials
        return None if trials is None else trials - self.store.used()

    def _reclaim_dead(self) -> None:
        """Take back the entries of workers that died since this one started (at most once a
        heartbeat interval): they are queued again, and their MLflow runs closed."""
        now = time.monotonic()
        if now - self._last_reclaim < self.config.workers.interval:
            return
        self._last_reclaim = now
        found = self.store.reclaim()
        if found:
            outcome = self.outcome
            outcome.reclaimed.extend(r.number for r in found)
            ids = [r.run_id for r in found if r.run_id]
            close_stale_runs(outcome.tracker, outcome.parent_run_id, ids)
            numbers = ", ".join(str(r.number) for r in found)
            self.display.line(f"re-queued trial(s) {numbers} of a stopped worker")

    def _wait_for_others(self) -> bool:
        """The budget is spent but other workers are running entries: wait for them, since one
        whose worker died is reclaimed and must run again. ``False`` when none is left."""
        if not self.store.running_elsewhere():
            return False
        if not self._waiting:
            self._waiting = True
            self.display.line("budget reserved; waiting for the trials other workers run")
        time.sleep(min(2.0, self.config.workers.interval))
        return True

    def _nobody_else(self) -> bool:
        """The backend waits, but no other worker has run anything for ``stale_after``: what
        it waits for will never come (stop rather than hang)."""
        if self.store.running_elsewhere():
            self._idle_since = None
            return False
        now = time.monotonic()
        self._idle_since = self._idle_since or now
        if now - self._idle_since < self.config.workers.stale_after:
            return False
        self.display.line("the backend waits for evaluations that no worker runs: stopping")
        return True

    def run(self) -> None:
        """Ask, evaluate, tell, until the budget is spent (and no other worker's entry may
        still come back to be run again)."""
        self._last_reclaim, self._waiting, self._idle_since = -math.inf, False, None
        while self.time_left():
            interrupts.raise_if_pending()
            self._reclaim_dead()
            left = self._budget_left()
            if left is not None and left <= 0:
                if self._wait_for_others():
                    continue
                return
            if self.ladder.run_one(self.config.budget.trials):  # a promotion or race seed
                continue
            batch = self.backend.batch_size()
            if batch == SearchBackend.WAIT:  # the rest of a generation trains elsewhere
                batch = self.store.queued()  # unless some of it came back to run again
                if not batch:
                    if self._nobody_else():
                        return
                    time.sleep(min(2.0, self.config.workers.interval))
                    continue
            self._idle_since = None
            if batch <= 0:  # the backend has nothing more to propose (its generations are done)
                return
            batch = min(batch, self.config.workers.batch)
            count = batch if left is None else min(batch, left)
            slots = self.store.reserve(count)
            if self.config.budget.trials is not None:  # another worker may have reserved too
                slots = self.store.within_budget(slots, self.config.budget.trials)
                if not slots:
                    continue  # the budget is taken: wait for the others (top of the loop)
            self.batches.run(slots, self._proposals(slots))

    def _proposals(self, slots: list) -> list[Proposal]:
        """One proposal per slot: the backend's, except for an interrupted promotion or race
        seed that a reservation handed back (the ladder replays it; a backend never sees it)."""
        own = [s for s in slots if s.retry is None or not s.retry.on_ladder]
        asked = self.backend.ask(own) if own else []
        if len(asked) != len(own):
            raise RuntimeError(
                f"backend {self.config.backend!r} answered {len(own)} slots with "
                f"{len(asked)} proposals"
            )
        by_number = {s.number: replayed(s, p) for s, p in zip(own, asked)}
        return [by_number.get(s.number) or self.ladder.replay(s) for s in slots]

    # -- close -------------------------------------------------------------------------------

    def close(self, status: str = "FINISHED") -> StudyOutcome:
        """Collect every worker's records, tag the best run, end the parent run."""
        outcome, store = self.outcome, self.store
        outcome.records = store.records()
        outcome.trained = self.evaluator.trained
        outcome.collect_results(store.cache)
        seconds = evaluation_seconds(outcome.results.values())
        outcome.seconds_per_evaluation = seconds or outcome.seconds_per_evaluation
        tracker, parent = outcome.tracker, outcome.parent_run_id
        try:
            top = self.ladder.top()
            outcome.verdict, outcome.winner = top.verdict(outcome.records, self.config.seed)
            log_verdict(tracker, parent, outcome.verdict)
        except ValueError as exc:  # results that cannot be paired: say so, close the rest
            self.display.line(f"no verdict: {exc}")
        best = outcome.best(1)
        tag_best(
            tracker,
            parent,
            best[0] if best else None,
            step=len(outcome.records),
            beaten_by=outcome.beaten_by(),
        )
        describe_study(outcome)  # the parent run's markdown description, best_candidate.json
        plots = study_plots(outcome.records, outcome.config.metric_name)
        if plots:
            tracker.log_files(parent, {f"plots/{name}": png for name, png in plots.items()})
        counts = outcome.counts()
        tracker.log_metrics(parent, {f"trials_{k}": v for k, v in counts.items()}, step=0)
        self.backend.close()  # before the parent run ends: a backend may log its last figures
        tracker.end_run(parent, status)
        store.close()
        outcome.wall_time = time.perf_counter() - self.started
        return outcome


def run_study(
    config: StudyConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    console: Any = None,
    extra_hooks: Callable[[], Sequence[Hook]] | None = None,
    trainer: Callable[..., Any] = Trainer,
) -> StudyOutcome:
    """Run (or resume) a study until its budget is spent; see the module docstring.

    Raises:
        ValueError: a study that does not fit its data (``ConfigError``, raised before any store
            is created), the storage cannot be opened, ``resume`` without a study to resume, or
            a study of the same name with another configuration (``StudyMismatch``).
        KeyboardInterrupt: after recording the interrupted evaluation (the study can resume).
    """
    study = Study(
        config, progress=progress, console=console, extra_hooks=extra_hooks, trainer=trainer
    ).open(resume=resume)
    status = "FINISHED"
    try:
        with study.display, study.store.heartbeat():
            study.run_baselines()
            study.start_trials()
            study.run()
    except TimeUp as stop:  # the running evaluation is recorded as interrupted and re-queued
        study.outcome.out_of_time = True
        study.display.console.print(stop_line(stop), highlight=False)
    except KeyboardInterrupt:
        status, study.outcome.interrupted = "KILLED", True
        raise
    finally:
        study.close(status)
    return study.outcome
