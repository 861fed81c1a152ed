"""``losslab compare``: the best candidates of finished studies and the study's baselines,
trained again at a final fidelity over several seeds.

Each (candidate, seed) is one evaluation of the study's :class:`Evaluator`, at the fidelity
named under ``final:`` in the study file, with the study's cache: nothing is trained twice, and
a comparison that was stopped resumes where it stopped. Its MLflow runs sit under one parent run
per study and fidelity (tag ``losslab.role=compare``), reopened when the comparison continues;
the runs a killed comparison left RUNNING are closed then, and those whose result was cached
are finished by the evaluation that finds it (``evaluation_runs.py``).
The statistics are in ``comparison_stats.py``, the tables in ``compare_tables.py``.

Seeds are the study's seed, seed + 1, ...; the test split always gets HD95 (``hd95: true``).

Entrants whose evaluations are the same (same candidate definition and train overrides: the
same evaluation key), such as a trial answered from the cache by a baseline it equals, are one
entrant, listed with every name (:func:`merge_identical`): counted twice they would be a pair
with no difference and two points of the rank correlation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from losslab.analysis.finished import FinishedStudy
from losslab.candidate import Candidate
from losslab.console import StudyProgress
from losslab.data import SegmentationDataset
from losslab.search.evaluator import BatchItem, Evaluator
from losslab.search.fidelity import Fidelity
from losslab.search.ladder import root_of
from losslab.search.study_config import StudyConfig
from losslab.search.study_runs import close_stale_runs
from losslab.tracking.tracker import Tracker
from losslab.training import Hook, Result, Trainer

__all__ = [
    "Comparison",
    "Entrant",
    "cached_comparison",
    "check_request",
    "merge_identical",
    "run_comparison",
]


@dataclass
class Entrant:
    """One column of the comparison: a study's candidate (``role`` ``candidate``) or a
    baseline, with its objective at the search fidelity and its results per seed."""

    label: str  # "trial-004" (or "quickstart/trial-004" with several studies), or "dice+cbs"
    role: str  # "candidate" or "baseline"
    candidate: Candidate
    overrides: dict[str, Any] = field(default_factory=dict)
    search_value: float = math.nan  # the objective on validation at the search's fidelity
    study: str = ""
    rung: int = 0  # the ladder rung search_value was measured at (0 without a ladder)
    results: list[Result] = field(default_factory=list)  # one per seed, in seed order
    run_ids: list[str | None] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)  # other names of the same evaluations

    @property
    def ok(self) -> list[Result]:
        return [r for r in self.results if r.ok]

    @property
    def display(self) -> str:
        """The label and its aliases: ``dice_ce = trial-004``."""
        return " = ".join([self.label, *self.aliases])


def merge_identical(entrants: Sequence[Entrant], key: Callable[[Entrant], str]) -> list[Entrant]:
    """One entrant per ``key`` (the evaluation key): the others become its ``aliases``.

    A candidate equal to a baseline is the baseline (its role and label, at the baseline's
    place), with the trial's name as an alias and the search value of either; otherwise the
    first keeps its place and label.
    """
    merged: dict[str, Entrant] = {}
    for entrant in entrants:
        found = merged.get(key(entrant))
        if found is None:
            merged[key(entrant)] = entrant
            continue
        first, second = found, entrant
        if found.role == "candidate" and entrant.role == "baseline":
            first, second = entrant, found
            del merged[key(entrant)]  # the baseline's place, after the candidates
            merged[key(entrant)] = first
        first.aliases.extend([second.label, *second.aliases])
        if math.isnan(first.search_value):
            first.search_value, first.rung = second.search_value, second.rung
    return list(merged.values())


@dataclass
class Comparison:
    """What :func:`run_comparison` trained (or found in the cache)."""

    config: StudyConfig  # the first study's: data, baselines, final fidelity
    fidelity_name: str
    fidelity: Fidelity
    seeds: list[int]
    dataset: SegmentationDataset
    entrants: list[Entrant]
    reference: str | None  # the baseline the per-class marks compare with
    parent_run_id: str | None = None
    tracker: Tracker | None = None
    trained: int = 0  # evaluations trained by this invocation (the rest came from the cache)

    @property
    def baselines(self) -> list[Entrant]:
        return [e for e in self.entrants if e.role == "baseline"]

    @property
    def candidates(self) -> list[Entrant]:
        return [e for e in self.entrants if e.role == "candidate"]


def _entrants(studies: Sequence[FinishedStudy], top: int | None) -> list[Entrant]:
    entrants, several = [], len(studies) > 1
    for study in studies:
        for record in study.ranked()[: top or study.config.top]:
            # named by its proposal, as the verdict names it (a promotion's entry has a root)
            label = f"trial-{root_of(record):03d}"
            entrants.append(
                Entrant(
                    f"{study.config.name}/{label}" if several else label,
                    "candidate",
                    record.candidate,
                    dict(record.overrides),
                    record.value,
                    study.config.name,
                    rung=record.rung,
                )
            )
    first = studies[0]
    # On a ladder a baseline's search value is read at the highest rung a compared trial
    # reached (the verdict's rung), against which its value means something; else rung 0.
    rungs = [r.rung for r in first.ranked()[: top or first.config.top]]
    rung = max(rungs, default=0) if not first.config.ladder.plain else 0
    found = {e.candidate.name: e.value for e in first.baselines(rung=rung)}
    for candidate in first.config.baselines:
        value = found.get(candidate.name, math.nan)
        entrants.append(
            Entrant(candidate.name, "baseline", candidate, {}, value, first.config.name, rung=rung)
        )
    return entrants


def check_request(
    studies: Sequence[FinishedStudy],
    *,
    fidelity: str | None,
    top: int | None,
    seeds: int,
    reference: str | None,
) -> tuple[str, Fidelity]:
    """Refuse what cannot be compared, before anything is written; returns the fidelity.

    Raises:
        ValueError: seeds < 1, top < 1 or more than a study's finished trials, a study whose
            trials all failed, studies on different data, an unknown fidelity or reference.
    """
    if type(seeds) is not int or seeds < 1:
        raise ValueError(f"--seeds must be a positive integer, got {seeds!r}")
    if top is not None and top < 1:
        raise ValueError(f"--top must be a positive integer, got {top!r}")
    for study in studies:
        ranked, name = study.ranked(), study.config.name
        if not ranked:
            counts: dict[str, int] = {}
            for record in study.records:
                counts[record.status] = counts.get(record.status, 0) + 1
            detail = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none ran"
            raise ValueError(
                f"study {name!r}: no trial finished ok ({len(study.records)} trials: {detail}); "
                "there is nothing to compare"
            )
        if top is not None and top > len(ranked):
            raise ValueError(
                f"--top {top} is more than the {len(ranked)} distinct finished trials of "
                f"study {name!r}"
            )
    first = studies[0]
    for study in studies[1:]:
        if study.dataset.fingerprint != first.dataset.fingerprint:
            raise ValueError(
                f"studies {first.config.name!r} and {study.config.name!r} use different data; "
                "compare studies of one dataset"
            )
        if study.config.train.model != first.config.train.model:
            raise ValueError(
                f"studies {first.config.name!r} and {study.config.name!r} train different "
                f"networks ({first.config.train.model}, {study.config.train.model}); every "
                f"candidate is trained again with the first study's train: section"
            )
    names = [b.name for b in first.config.baselines]
    if reference is not None and reference not in names:
        raise ValueError(
            f"--reference {reference!r} is not a baseline of study {first.config.name!r}; "
            f"its baselines: {', '.join(names) or 'none'}"
        )
    return first.config.final_fidelity(fidelity)


def _parent_run(tracker: Tracker, config: StudyConfig, fidelity: str, params: dict) -> str:
    tags = {"losslab.study": config.name, "losslab.role": "compare", "losslab.fidelity": fidelity}
    found = sorted(tracker.runs_tagged(tags), key=lambda r: (r.start_time, r.run_id))
    if found:
        tracker.reopen_run(found[0].run_id)
        return found[0].run_id
    run_id = tracker.start_run(f"compare {config.name} at {fidelity}", tags=tags)
    tracker.log_params(run_id, params)
    return run_id


def _final_evaluator(study: FinishedStudy, final: Fidelity, **kwargs: Any) -> Evaluator:
    """The evaluator of the final fidelity (HD95 on), keyed as every comparison keys it."""
    config = study.config
    train = dataclasses.replace(config.train, hd95=True)
    kwargs.setdefault("cache", study.store.cache)
    return Evaluator(
        study.dataset,
        train,
        final,
        config.objective,
        seed=config.seed,
        tags={"losslab.study": config.name, "losslab.role": "final"},
        max_population=config.workers.population_size(train),
        **kwargs,
    )


def cached_comparison(
    study: FinishedStudy,
    *,
    fidelity: str | None = None,
    top: int | None = None,
    reference: str | None = None,
    max_seeds: int = 100,
) -> Comparison | None:
    """The comparison as far as the cache holds it (``losslab report``: nothing trains): the
    seeds from the study's up to the first that no entrant has; ``None`` when there is none."""
    fidelity_name, final = study.config.final_fidelity(fidelity)
    evaluator = _final_evaluator(study, final)
    entrants = merge_identical(_entrants([study], top), _identity(evaluator))
    seeds = []
    for seed in range(study.config.seed, study.config.seed + max_seeds):
        hits = [
            evaluator.cache.get(evaluator.key(e.candidate, seed=seed, overrides=e.overrides))
            for e in entrants
        ]
        if not any(hits):
            break
        seeds.append(seed)
        for entrant, hit in zip(entrants, hits):  # a missing one keeps its seed's place
            missing = Result("missing", list(study.dataset.class_names), "not trained yet")
            entrant.results.append(hit.result if hit is not None else missing)
            entrant.run_ids.append(hit.run_id if hit is not None else None)
    if not seeds:
        return None
    baselines = [e for e in entrants if e.role == "baseline"]
    return Comparison(
        study.config,
        fidelity_name,
        final,
        seeds,
        study.dataset,
        entrants,
        reference or (baselines[0].label if baselines else None),
    )


def _identity(evaluator: Evaluator) -> Callable[[Entrant], str]:
    """An entrant's evaluation key without its seed: equal for the same evaluations."""
    return lambda e: evaluator.key(e.candidate, seed=0, overrides=e.overrides)


class _Done(Hook):
    """Prints one line per finished evaluation above the progress bars."""

    population_safe = True

    def __init__(self, display: StudyProgress, label: str):
        self.display, self.label = display, label

    def on_train_end(self, state: Any, result: Result) -> None:
        if result.status == "interrupted":
            return
        what = result.status if not result.ok else f"test mean Dice {result.foreground_mean():.3f}"
        why = f": {result.reason}" if result.reason else ""
        self.display.trial_done(f"{self.label}: {what}{why}")


def run_comparison(
    studies: Sequence[FinishedStudy],
    *,
    fidelity: str | None = None,
    top: int | None = None,
    seeds: int = 5,
    reference: str | None = None,
    progress: bool = True,
    console: Any = None,
    extra_hooks: Callable[[], Sequence[Hook]] | None = None,
    trainer: Callable[..., Any] = Trainer,
) -> Comparison:
    """Train (or find in the cache) every entrant at the final fidelity for ``seeds`` seeds.

    Raises:
        ValueError: see :func:`check_request` (raised before anything is written).
        KeyboardInterrupt: after the finished evaluations are cached (a rerun resumes).
    """
    fidelity_name, final = check_request(
        studies, fidelity=fidelity, top=top, seeds=seeds, reference=reference
    )
    first = studies[0]
    config = first.config
    entrants = _entrants(studies, top)
    seed_list = [config.seed + i for i in range(seeds)]
    store = config.store(first.storage_url)  # opened as a worker: it trains and claims
    store.open(resume=True, seed=config.seed)
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    params = {
        "fidelity": f"{fidelity_name}: {final.describe()}",
        "seeds": ",".join(map(str, seed_list)),
        "top": top or config.top,
        "studies": ",".join(s.config.name for s in studies),
    }
    parent = _parent_run(tracker, config, fidelity_name, params)
    close_stale_runs(tracker, parent, [])  # a killed comparison's runs (cached ones: finished)
    evaluator = _final_evaluator(
        first, final, tracker=tracker, parent_run_id=parent, cache=store.cache, trainer=trainer
    )
    entrants = merge_identical(entrants, _identity(evaluator))
    baselines = [e for e in entrants if e.role == "baseline"]
    comparison = Comparison(
        config,
        fidelity_name,
        final,
        seed_list,
        first.dataset,
        entrants,
        reference or (baselines[0].label if baselines else None),
        parent,
        tracker,
    )
    display = StudyProgress(
        total=len(entrants) * seeds,
        console=console,
        enabled=progress,
        title=f"compare {config.name} at {fidelity_name}",
    )
    items, owners = [], []
    for entrant in entrants:
        for seed in seed_list:
            name = entrant.label if entrant.role == "candidate" else f"baseline {entrant.label}"
            label = f"final {name} seed {seed}"
            hooks = [display.run_hook(label), _Done(display, label)]
            hooks += list(extra_hooks()) if extra_hooks is not None else []
            items.append(
                BatchItem(
                    entrant.candidate,
                    seed=seed,
                    overrides=entrant.overrides,
                    hooks=hooks,
                    tags={"losslab.entrant": entrant.label, "losslab.fidelity": fidelity_name},
                    origin=label,
                )
            )
            owners.append(entrant)
    cached = sum(
        store.cache.get(evaluator.key(i.candidate, seed=i.seed, overrides=i.overrides)) is not None
        for i in items
    )
    display.advance_to(cached)
    status = "KILLED"
    try:
        with display, store.heartbeat():
            evaluations = evaluator.evaluate_batch(items)
        status = "FINISHED"
    finally:
        comparison.trained = evaluator.trained
        if status != "FINISHED":
            tracker.end_run(parent, status)
        store.close()
    for entrant, evaluation in zip(owners, evaluations):
        entrant.results.append(evaluation.result)
        entrant.run_ids.append(evaluation.run_id)
    return comparison
