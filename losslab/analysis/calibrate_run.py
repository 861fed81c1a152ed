"""``losslab calibrate``'s training: a study's baselines and a few drawn candidates over a ladder
of fidelities and seeds, through the study's evaluation cache and MLflow.

The ladder ends at the fidelity the study's verdict is taken at (the first of its ``final:``
fidelities, else the ``train:`` section in full) and halves one quantity below it (epochs by
default; steps per epoch or training cases on request) for each cheaper rung; the study's own
search fidelity is a rung too when it is not one already. Candidates are the study's baselines
plus ``k`` draws from its space (Optuna's random sampler seeded with the study's seed; a
structural space such as a GP study's draws its ``seeds:`` losses instead). Evaluations run
seed by seed, each seed cheapest rung first, so a time cap leaves whole seeds of every rung;
each is keyed as any evaluation of the study (a later ``losslab search`` or ``compare`` finds
the ones it needs in the cache). A candidate's value is the study's objective on the
validation split below the top (what the search sees) and on the test split at the top (what
the verdict reads). CPU time (user + system, all threads) is measured around each
evaluation that trains. The analysis is :mod:`losslab.analysis.calibration`.
"""

from __future__ import annotations

import dataclasses
import math
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from losslab.analysis.calibration import Observation
from losslab.candidate import Candidate
from losslab.data import build_dataset
from losslab.search.deadline import DeadlineHook, TimeUp
from losslab.search.evaluator import Evaluator
from losslab.search.fidelity import Fidelity
from losslab.search.store import default_storage_url
from losslab.search.study_config import StudyConfig
from losslab.tracking.tracker import Tracker, resolve_tracking_uri
from losslab.training import Hook, Trainer

__all__ = ["VARIED", "CalibrationRun", "Entry", "Rung", "draw_entries", "ladder", "run_calibration"]

VARIED = ("epochs", "steps_per_epoch", "train_cases")
"""What a ladder may halve below its top fidelity."""


@dataclass(frozen=True)
class Rung:
    """One fidelity of the ladder and its name (``epochs=4``, ``search``, ``final``)."""

    name: str
    fidelity: Fidelity


@dataclass(frozen=True)
class Entry:
    """One candidate calibrate trains: a label, the candidate and its train overrides."""

    label: str
    candidate: Candidate
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class CalibrationRun:
    """What calibrate trained: observations, measured costs and what the cap left out."""

    rungs: list[Rung]
    entries: list[Entry]
    seeds: list[int]
    observations: list[Observation] = field(default_factory=list)
    cpu: dict[str, list[float]] = field(default_factory=dict)  # trained now, CPU s
    wall: dict[str, list[float]] = field(default_factory=dict)  # every result, wall s
    skipped: int = 0  # evaluations the time cap left out
    trained: int = 0
    parent_run_id: str | None = None
    tracker: Tracker | None = None

    def costs(self) -> dict[str, float]:
        """Seconds per evaluation of each rung, in one unit for all: CPU seconds when every
        rung trained here, else the wall seconds of the results (cached ones included)."""
        measured = all(self.cpu.get(rung.name) for rung in self.rungs)
        source = self.cpu if measured else self.wall
        out = {}
        for rung in self.rungs:
            values = source.get(rung.name) or []
            out[rung.name] = sum(values) / len(values) if values else math.nan
        return out

    @property
    def order(self) -> list[str]:
        return [r.name for r in self.rungs]


def _value(config: StudyConfig, fidelity: Fidelity, name: str) -> int:
    """The effective ``name`` of ``fidelity`` over the study's train config and data."""
    value = getattr(fidelity, name)
    if value is not None:
        return int(value)
    if name == "train_cases":
        cases = config.data.num_cases or 0
        return max(1, round(cases * config.data.split_fractions[0]))
    return int(getattr(config.train, name))


def ladder(config: StudyConfig, *, rungs: int = 3, vary: str = "epochs", top: str | None = None):
    """The rungs, cheapest first: ``top`` (a name of ``final:``, ``search`` or ``full``;
    default the study's verdict fidelity) and ``rungs - 1`` halvings of ``vary`` below it,
    plus the study's own fidelity when it is not among them.

    Raises:
        ValueError: an unknown ``vary`` or ``top``, or ``rungs < 2``.
    """
    if vary not in VARIED:
        raise ValueError(f"--vary must be one of {', '.join(VARIED)}, got {vary!r}")
    if rungs < 2:
        raise ValueError(f"--rungs must be at least 2 (a top and one cheaper), got {rungs}")
    top_name, top_fidelity = config.final_fidelity(top)
    most = _value(config, top_fidelity, vary)
    found: dict[Fidelity, str] = {}
    for k in range(rungs - 1, 0, -1):
        value = max(1, most // 2**k)
        if value < most:
            fidelity = dataclasses.replace(top_fidelity, **{vary: value})
            found.setdefault(fidelity, f"{vary}={value}")
    found[top_fidelity] = top_name
    found.setdefault(config.fidelity, "search")
    cost = {f: math.prod(_value(config, f, n) for n in VARIED[:2]) for f in found}
    ordered = sorted(found, key=lambda f: (cost[f], _value(config, f, "train_cases")))
    ordered.remove(top_fidelity)  # the top is the reference: last, whatever it costs
    return [Rung(found[f], f) for f in [*ordered, top_fidelity]]


def draw_entries(config: StudyConfig, count: int) -> list[Entry]:
    """The study's baselines, then up to ``count`` distinct candidates drawn from its space
    (Optuna's random sampler seeded with the study's seed), each once."""
    entries = [Entry(b.name or b.key[:8], b) for b in config.baselines]
    seen = {(e.candidate.key, "{}") for e in entries}
    space = config.space
    if count <= 0:
        return entries
    if not space.losses:  # a structural space (GP): its seed losses are its candidates
        for name in list(space.structure.get("seeds", []))[:count]:
            candidate = Candidate.from_loss(str(name))
            if (candidate.key, "{}") not in seen:
                seen.add((candidate.key, "{}"))
                entries.append(Entry(f"seed {name}", candidate))
        return entries
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=config.seed))
    drawn = 0
    for _ in range(20 * count):
        if drawn == count:
            break
        candidate, overrides = space.sample(study.ask())
        ident = (candidate.key, repr(sorted(overrides.items())))
        if ident in seen:
            continue
        seen.add(ident)
        drawn += 1
        entries.append(Entry(f"draw {drawn} {candidate.name}", candidate, dict(overrides)))
    return entries


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_calibration(
    config: StudyConfig,
    *,
    rungs: Sequence[Rung],
    entries: Sequence[Entry],
    seeds: int,
    minutes: float | None = None,
    storage: str | None = None,
    hooks: Callable[[str], Sequence[Hook]] | None = None,
    trainer: Callable[..., Any] | None = None,
) -> CalibrationRun:
    """Train every entry at every rung for ``seeds`` seeds (cheapest rung first, seed by seed)
    within ``minutes``; an evaluation the cap would cut is not started (one the cap cuts all
    the same is interrupted and left out, as a study leaves it). ``trainer`` builds each
    evaluation's trainer (default :class:`Trainer`)."""
    url = (
        storage or config.storage or default_storage_url(resolve_tracking_uri(config.tracking_uri))
    )
    dataset = build_dataset(config.data)
    store = config.store(url)
    store.open(resume=False, seed=config.seed)  # created when the search has not run yet
    tracker = Tracker(config.tracking_uri, experiment=config.experiment)
    seed_list = [config.seed + i for i in range(seeds)]
    run = CalibrationRun(list(rungs), list(entries), seed_list, tracker=tracker)
    tags = {"losslab.study": config.name, "losslab.role": "calibrate"}
    run.parent_run_id = tracker.start_run(f"calibrate {config.name}", tags=tags)
    tracker.log_params(
        run.parent_run_id,
        {
            "rungs": "; ".join(f"{r.name}: {r.fidelity.describe()}" for r in rungs),
            "seeds": ",".join(map(str, seed_list)),
            "candidates": len(entries),
            "minutes": minutes,
        },
    )
    evaluators = {
        r.name: Evaluator(
            dataset,
            config.train,
            r.fidelity,
            config.objective,
            seed=config.seed,
            tracker=tracker,
            parent_run_id=run.parent_run_id,
            cache=store.cache,
            tags={**tags, "losslab.fidelity": r.name},
            trainer=trainer or Trainer,
            max_population=1,
        )
        for r in rungs
    }
    start = time.perf_counter()
    deadline = start + 60.0 * minutes if minutes else math.inf
    status = "FINISHED"
    try:
        with store.heartbeat():
            for seed in seed_list:
                for rung in rungs:
                    for entry in entries:
                        left = deadline - time.perf_counter()
                        expected = run.wall.get(rung.name, [0.0])[-1]
                        if left <= 0 or expected > left:
                            run.skipped += 1
                            continue
                        _evaluate(
                            run, evaluators[rung.name], rung, entry, seed, deadline, minutes, hooks
                        )
    except TimeUp:
        status = "KILLED"
    finally:
        tracker.end_run(run.parent_run_id, status)
        store.close()
    return run


def _evaluate(run, evaluator, rung, entry, seed, deadline, minutes, hooks) -> None:
    extra = [DeadlineHook(deadline, minutes)] if math.isfinite(deadline) else []
    extra += list(hooks(f"{rung.name} {entry.label} seed {seed}")) if hooks else []
    before = _cpu_seconds()
    evaluation = evaluator.evaluate(
        entry.candidate,
        seed=seed,
        overrides=entry.overrides,
        hooks=extra,
        origin=f"calibrate {rung.name} {entry.label} seed {seed}",
    )
    cpu = _cpu_seconds() - before
    result = evaluation.result
    if not evaluation.cached:
        run.trained += 1
        run.cpu.setdefault(rung.name, []).append(cpu)
    run.wall.setdefault(rung.name, []).append(float(result.wall_time))
    # The rungs below the top are scored as the search sees them (validation), the top as
    # the verdict is taken (test), as ``losslab compare`` does.
    top = rung is run.rungs[-1]
    value = evaluator.objective.of_test(result) if top else evaluation.value
    value = value if result.ok else math.nan
    run.observations.append(Observation(entry.label, rung.name, seed, float(value)))
