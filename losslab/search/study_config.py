"""A study's YAML file validated into a typed :class:`StudyConfig`; errors name file and key.

::

    study: quickstart                 # the study's name in its store and MLflow's parent run
    backend: optuna                   # any registered backend (registry.py)
    data: {source: phantom, cases: 10, shape: [32, 32, 32]}
    train: {model: unet3d, lr: 0.003, hd95: false}
    fidelity: {epochs: 4, steps_per_epoch: 15}   # or a ladder (ladder.py):
                # {rungs: [{epochs: 2}, {epochs: 6}, {epochs: 12, seeds: 3}], keep: 0.34}
    objective: {kind: mean}            # mean | worst_k (k) | min | mix (weights)
    budget: {trials: 12, minutes: 5}   # trials in the whole study; minutes per invocation
    seed: 0
    storage: null                      # any Optuna storage URL; default: a journal file
    experiment: losslab-quickstart
    workers: {stale_after: 300, heartbeat: 60, retry_minutes: 2}  # workers sharing the study
    final: {epochs: 40, steps_per_epoch: 30}   # losslab compare's fidelity (or named ones:
                                               # final: {long: {epochs: 40}, short: {...}})
    optuna: {sampler: {name: tpe}, pruner: {name: hyperband, min_resource: 1}}  # the backend's
    baselines: [{loss: dice}, {name: dice+cbs, loss: dice, class_schedule: cbs}]
    space: {loss: ..., class_schedule: ..., term_schedule: ..., train: ...}   # see space.py
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from losslab.candidate import Candidate
from losslab.config import (
    LIMITS,
    ConfigError,
    parse_candidate,
    parse_yaml_mapping,
    read_yaml_mapping,
)
from losslab.data import DataConfig
from losslab.hints import did_you_mean, unknown_key
from losslab.limits import at_most, check_ceilings
from losslab.search.fidelity import Fidelity
from losslab.search.ladder import Ladder
from losslab.search.objective import Objective
from losslab.search.registry import DEFAULT_BACKEND, backend_names, backend_space_keys
from losslab.search.space import SearchSpace, SpaceError
from losslab.search.space_config import parse_space
from losslab.search.study_precheck import STUDY_KEYS
from losslab.search.workers import WorkerSettings
from losslab.strict_yaml import short_repr
from losslab.training import TrainConfig
from losslab.typed import from_mapping

if TYPE_CHECKING:
    from losslab.search.store.ledger import StudyStore

__all__ = ["Budget", "StudyConfig", "load_study", "parse_space"]

STUDY_KEYS = STUDY_KEYS


@dataclass(frozen=True)
class Budget:
    """When a study stops: ``trials`` finished in the whole study, ``minutes`` per invocation."""

    trials: int | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        if self.trials is None and self.minutes is None:
            raise ValueError("give 'trials', 'minutes' or both")
        if self.trials is not None and (type(self.trials) is not int or self.trials < 1):
            raise ValueError(f"trials={self.trials!r} must be a positive integer")
        if self.minutes is not None:
            if isinstance(self.minutes, bool) or not isinstance(self.minutes, int | float):
                raise ValueError(f"minutes={self.minutes!r} must be a number")
            if not (self.minutes > 0 and math.isfinite(self.minutes)):
                raise ValueError(f"minutes={self.minutes!r} must be > 0")
        for name in ("trials", "minutes"):
            value = getattr(self, name)
            if value is not None and value > LIMITS[name]:
                raise ValueError(
                    f"{name}={value!r} is more than {LIMITS[name]:,}, the most allowed"
                )


@dataclass(frozen=True)
class StudyConfig:
    """Everything that defines a study (see the module docstring)."""

    name: str
    space: SearchSpace
    budget: Budget
    backend: str = DEFAULT_BACKEND
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    fidelity: Fidelity = field(default_factory=Fidelity)
    objective: Objective = field(default_factory=Objective)
    seed: int = 0
    storage: str | None = None
    experiment: str = "losslab-search"
    tracking_uri: str | None = None
    settings: Any = field(default_factory=dict)  # the backend's own section, validated by it
    baselines: tuple[Candidate, ...] = ()
    top: int = 3
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    final: dict[str, Fidelity] = field(default_factory=dict)  # losslab compare's fidelities
    path: str = ""
    source: str = ""
    ladder: Ladder | None = None  # the fidelity's rungs (None: one rung, ``fidelity``)

    def __post_init__(self) -> None:
        # Rung 0 is the search's fidelity (what backends and ``compare`` call "search"). A
        # config given another fidelity than its ladder's rung 0 (``dataclasses.replace`` by
        # calibrate or compare) is a one-rung study of that fidelity.
        if self.ladder is None:
            object.__setattr__(self, "ladder", Ladder.single(self.fidelity))
        elif self.ladder.rungs[0].fidelity != self.fidelity:
            if self.fidelity == Fidelity():  # built from a ladder (load_study)
                object.__setattr__(self, "fidelity", self.ladder.rungs[0].fidelity)
            else:
                object.__setattr__(self, "ladder", Ladder.single(self.fidelity))

    @property
    def fingerprint(self) -> str:
        """Hash of what defines the study's trials, after validation (so a default written out
        or left out is the same study): space, data, training, fidelity, objective, seed.
        Budget, storage, tracking, sampler, pruner and baselines may change between runs."""
        space = dataclasses.asdict(self.space)
        if not space["structure"]:  # the fingerprint of a numeric space is what it always was
            del space["structure"]
        kept = {
            "backend": self.backend,
            "space": space,
            "data": self.data.as_dict(),
            "train": self.train.identity(),
            "fidelity": self.fidelity.to_dict(),
            "objective": self.objective.to_dict(),
            **({} if self.ladder.plain else {"ladder": self.ladder.to_dict()}),
            "seed": self.seed,
        }
        text = json.dumps(kept, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def final_fidelity(self, name: str | None = None) -> tuple[str, Fidelity]:
        """The fidelity ``losslab compare`` trains at: ``name`` (one of ``final:``'s, or
        ``search``: the study's own, or ``full``: the ``train:`` section with no cut), by
        default the first of ``final:``, else ``full``.

        Raises:
            ValueError: an unknown name (the message lists the known ones).
        """
        known = {**self.final, "search": self.fidelity, "full": Fidelity()}
        if name is None:
            name = next(iter(self.final), "full")
        if name not in known:
            raise ValueError(
                f"fidelity {name!r} is not defined by the study {self.name!r}; known: "
                f"{', '.join(known)} (define more under 'final:' in {self.path or 'the file'})"
            )
        return name, known[name]

    @property
    def metric_name(self) -> str:
        """The objective as optuna-dashboard and the plots name it (``val mean Dice``)."""
        return f"val {self.objective.describe()}"

    def store(self, url: str) -> StudyStore:
        """The study's store at ``url``, not opened yet."""
        from losslab.search.store import open_store

        return open_store(
            url,
            study_name=self.name,
            fingerprint=self.fingerprint,
            source=self.source,
            workers=self.workers,
            metric_name=self.metric_name,
        )

    def run_params(self, storage_url: str) -> dict[str, Any]:
        """What the study's MLflow parent run records as parameters."""
        return {
            "study": self.name,
            "backend": self.backend,
            "storage": storage_url,
            "objective": self.objective.describe(),
            "fidelity": self.ladder.describe(),
            "seed": self.seed,
            "budget.trials": self.budget.trials,
            "budget.minutes": self.budget.minutes,
            "fingerprint": self.fingerprint,
        }


def _typed(raw: Any, build: Any, where: str) -> Any:
    """``build(raw)``; an error names ``where``, down to the field when the message names one
    (``Fidelity.epochs=0 must be...`` -> ``fidelity.epochs``)."""
    try:
        return build(raw if raw is not None else {})
    except (TypeError, ValueError) as exc:
        field_named = re.match(r"(?:[A-Za-z]+[. ])?([a-z_]+)=", str(exc))
        key = f"{where}.{field_named.group(1)}" if field_named else where
        raise ConfigError(key, str(exc)) from None


def _plain(raw: Any) -> Any:
    """The fidelity of a plain ``fidelity:`` (a ladder's is its rung 0, set by the config)."""
    return None if isinstance(raw, Mapping) and "rungs" in raw else raw


def _ladder(raw: Any, where: str) -> Ladder | None:
    """``fidelity: {rungs: [...], keep: ...}`` as a :class:`Ladder` (``None``: a plain one)."""
    if not isinstance(raw, Mapping) or "rungs" not in raw:
        return None
    try:
        return Ladder.from_dict(raw, "fidelity")
    except ValueError as exc:  # "fidelity.rungs[1].seeds: ..." -> the key at fault, in the file
        key, _, message = str(exc).partition(": ")
        raise ConfigError(where.removesuffix("fidelity") + key, message) from None


def _finals(raw: Any, where: str) -> dict[str, Fidelity]:
    """``final:``: one fidelity (named ``final``) or a mapping of names to fidelities."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(where, f"a fidelity mapping such as {{epochs: 40}}, got {raw!r}")
    named = all(isinstance(v, Mapping) for v in raw.values())
    items = raw.items() if named else [("final", raw)]
    finals = {}
    for name, body in items:
        if name in ("search", "full") or not isinstance(name, str):
            raise ConfigError(f"{where}.{name}", "'search' and 'full' are reserved names")
        at = f"{where}.{name}" if named else where
        finals[name] = _typed(body, Fidelity.from_dict, at)
    return finals


def load_study(path: str | Path, *, text: str | None = None) -> StudyConfig:
    """Read and validate a study YAML file (or ``text``, the file's content as a study's store
    keeps it, ``path`` then naming where it came from).

    Raises:
        ConfigError: ``file: key.path: problem`` for malformed YAML, an unknown key, a bad value,
            an unknown loss, schedule or network, an empty space, a count beyond its sane
            maximum, or a value that does not fit the data (see ``study_checks``).
    """
    path = Path(path)
    source, raw = read_yaml_mapping(path) if text is None else parse_yaml_mapping(text, path)
    where = f"{path}: "
    backends = backend_names()
    unknown = sorted(set(map(str, raw)) - STUDY_KEYS - set(backends))
    if unknown:
        raise ConfigError(where + unknown[0], unknown_key(unknown[0], STUDY_KEYS | set(backends)))
    check_ceilings(raw, where)
    backend = raw.get("backend", DEFAULT_BACKEND)
    if backend not in backends:
        raise ConfigError(
            where + "backend",
            f"{short_repr(backend)} is not one of {', '.join(backends)}; "
            f"{did_you_mean(backend, backends)}".rstrip("; "),
        )
    for other in sorted(set(raw) & set(backends) - {backend}):
        raise ConfigError(
            where + other,
            f"settings of the backend {other!r}, but the study's backend is {backend!r}",
        )
    try:
        space = parse_space(raw.get("space"), backend_space_keys(backend))
    except SpaceError as exc:
        raise ConfigError(where + exc.key, exc.problem) from None
    budget = _typed(
        raw.get("budget"), lambda r: from_mapping(Budget, r, "budget"), where + "budget"
    )
    baselines_raw = raw.get("baselines") or []
    if not isinstance(baselines_raw, list):
        raise ConfigError(where + "baselines", "a list of candidates")
    baselines = tuple(
        parse_candidate({"loss": b} if isinstance(b, str) else b, f"{where}baselines[{i}]")
        for i, b in enumerate(baselines_raw)
    )
    names = [b.name for b in baselines]
    if len(set(names)) != len(names):
        raise ConfigError(where + "baselines", f"two baselines share a name: {names}")
    seed, top = raw.get("seed", 0), raw.get("top", 3)
    for key, value in (("seed", seed), ("top", top)):
        if type(value) is not int or value < (1 if key == "top" else 0):
            raise ConfigError(
                where + key,
                f"must be a {'positive' if key == 'top' else 'non-negative'} integer, "
                f"got {short_repr(value)}",
            )
    at_most(seed, "seed", where + "seed")
    at_most(top, "top", where + "top")
    for key in ("study", "experiment", "storage", "tracking_uri"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ConfigError(where + key, f"must be a string, got {short_repr(raw[key])}")
    settings = raw.get(backend) or {}
    if not isinstance(settings, Mapping):
        raise ConfigError(
            where + backend, f"the {backend} settings are a mapping, got {short_repr(settings)}"
        )
    config = StudyConfig(
        name=raw.get("study") or path.stem,
        space=space,
        budget=budget,
        backend=backend,
        data=_typed(raw.get("data"), DataConfig.from_dict, where + "data"),
        train=_typed(raw.get("train"), TrainConfig.from_dict, where + "train"),
        fidelity=_typed(_plain(raw.get("fidelity")), Fidelity.from_dict, where + "fidelity"),
        ladder=_ladder(raw.get("fidelity"), where + "fidelity"),
        objective=_typed(raw.get("objective"), Objective.from_dict, where + "objective"),
        seed=seed,
        storage=raw.get("storage"),
        experiment=raw.get("experiment") or "losslab-search",
        tracking_uri=raw.get("tracking_uri"),
        settings=dict(settings),
        baselines=baselines,
        top=top,
        workers=_typed(
            raw.get("workers"),
            lambda r: from_mapping(WorkerSettings, r, "workers"),
            where + "workers",
        ),
        final=_finals(raw.get("final"), where + "final"),
        path=str(path),
        source=source,
    )
    from losslab.search.study_checks import check_study  # networks and data: heavy, last

    check_study(config)
    return config
