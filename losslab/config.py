"""YAML configurations validated into typed objects; every error names the file and the key.

``losslab baselines CONFIG`` reads a :class:`SuiteConfig`::

    data: {source: phantom, cases: 10, shape: [32, 32, 32]}
    train: {model: unet3d, epochs: 6, steps_per_epoch: 20}
    seeds: [0]
    reference: dice
    candidates:
      - {name: dice+cbs, loss: dice, class_schedule: {name: cbs, zeta: 0.1}}
      - {name: wce->wdice, terms: [ce, dice], class_schedule: median_frequency, term_schedule: ramp}
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from losslab.candidate import Candidate, ScheduleSpec
from losslab.data import DataConfig
from losslab.losses import ABSENT_CLASSES, LossSyntaxError, resolve_loss
from losslab.schedules import get_class_schedule, get_term_schedule
from losslab.training import TrainConfig

__all__ = [
    "LIMITS",
    "ConfigError",
    "SuiteConfig",
    "check_at_most",
    "check_data_limits",
    "check_schedule",
    "check_train_limits",
    "load_suite",
    "parse_candidate",
    "parse_yaml_mapping",
    "read_yaml_mapping",
]

# The most a count may be: a larger value is a typo (``epochs: 1e30``), not a plan. Each is far
# beyond any real use and small enough that a run, a loop or an allocation stays finite.
LIMITS = {
    "epochs": 100_000,
    "steps_per_epoch": 1_000_000,
    "batch_size": 4096,
    "val_every": 100_000,
    "sw_batch_size": 4096,
    "patch_size": 1024,  # per side, in voxels
    "cases": 1_000_000,
    "shape": 1024,  # per side of a phantom case, in voxels
    "trials": 1_000_000,
    "minutes": 366 * 24 * 60,
    "seed": 2**32 - 1,
}

_CANDIDATE_KEYS = {
    "name",
    "loss",
    "terms",
    "term_weights",
    "params",
    "class_schedule",
    "term_schedule",
    "absent_classes",
    "param_schedule",
    "candidate",
}
_SUITE_KEYS = {"data", "train", "seeds", "experiment", "tracking_uri", "reference", "candidates"}


class ConfigError(ValueError):
    """A configuration that cannot be accepted: ``where`` is ``file: key.path``."""

    def __init__(self, where: str, problem: str):
        self.where, self.problem = where, problem
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class SuiteConfig:
    """A list of candidates trained on the same data, network and seeds under one parent run."""

    candidates: tuple[Candidate, ...]
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seeds: tuple[int, ...] = (0,)
    experiment: str = "losslab-baselines"
    tracking_uri: str | None = None
    reference: str = "dice"


def check_at_most(value: Any, name: str, where: str) -> None:
    """``value`` (a number or a sequence of them) is at most ``LIMITS[name]``; ``where`` is the
    key path of the error."""
    most = LIMITS[name]
    for v in value if isinstance(value, list | tuple) else (value,):
        if isinstance(v, int | float) and not isinstance(v, bool) and v > most:
            raise ConfigError(where, f"{value!r} is more than {most:,}, the most allowed")


def check_train_limits(train: TrainConfig, where: str) -> None:
    """The counts of a train config are sane (``where.epochs``... names the key at fault)."""
    for name in ("epochs", "steps_per_epoch", "batch_size", "val_every", "sw_batch_size"):
        check_at_most(getattr(train, name), name, f"{where}.{name}")
    check_at_most(train.patch_size, "patch_size", f"{where}.patch_size")
    check_at_most(train.seed, "seed", f"{where}.seed")


def check_data_limits(data: DataConfig, where: str) -> None:
    """The counts of a data config are sane (``where.cases``, ``where.shape``...)."""
    check_at_most(data.cases, "cases", f"{where}.cases")
    if data.source == "phantom":
        check_at_most(data.shape, "shape", f"{where}.shape")
    check_at_most(data.seed, "seed", f"{where}.seed")


def _schedule(raw: Any, where: str) -> ScheduleSpec:
    if isinstance(raw, str):
        return ScheduleSpec.of(raw)
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise ConfigError(where, "a schedule is a name or a mapping with 'name' and its parameters")
    params = {k: v for k, v in raw.items() if k != "name"}
    return ScheduleSpec.of(str(raw["name"]), **params)


def read_candidate_file(path: Any, where: str) -> Candidate:
    """A candidate from its JSON file (an MLflow run's ``candidate.json``, a study's
    ``best_candidate.json``: a replayed greedy schedule, a GP loss, a learned rule...)."""
    file = Path(str(path)).expanduser()
    try:
        data = json.loads(file.read_text())
    except OSError as exc:
        raise ConfigError(where, f"cannot read the candidate file {file}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(where, f"{file} is not JSON: {exc}") from None
    try:
        return Candidate.from_dict(data)
    except (LossSyntaxError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(where, f"{file} is not a valid candidate: {exc}") from None


def parse_candidate(raw: Any, where: str) -> Candidate:
    """One candidate entry: ``loss`` (a library name or expression), ``terms`` (a list of them)
    or ``candidate`` (the path of a candidate JSON file, with an optional ``name``)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(where, f"a candidate is a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _CANDIDATE_KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown key; known: {sorted(_CANDIDATE_KEYS)}")
    if "candidate" in raw:
        extra = sorted(set(raw) - {"candidate", "name"})
        if extra:
            raise ConfigError(
                f"{where}.{extra[0]}",
                "a candidate file holds the whole candidate; only 'name' may be given beside it",
            )
        candidate = read_candidate_file(raw["candidate"], f"{where}.candidate")
        if raw.get("name"):
            candidate = dataclasses.replace(candidate, name=str(raw["name"]))
        return candidate
    if ("loss" in raw) == ("terms" in raw):
        raise ConfigError(where, "give exactly one of 'loss', 'terms' or 'candidate'")
    params = dict(raw.get("params", {}))
    try:
        if "loss" in raw:
            candidate = Candidate.from_loss(str(raw["loss"]), name=raw.get("name"), **params)
            terms, weights = candidate.terms, candidate.term_weights
        else:
            terms = tuple(_term(t, f"{where}.terms[{i}]") for i, t in enumerate(raw["terms"]))
            terms = tuple(t for group in terms for t in group)
            weights = ()
        if "term_weights" in raw:
            weights = tuple(float(w) for w in raw["term_weights"])
        class_schedule = _schedule(raw.get("class_schedule", "uniform"), f"{where}.class_schedule")
        term_schedule = _schedule(raw.get("term_schedule", "static"), f"{where}.term_schedule")
        _check_schedules(class_schedule, term_schedule, len(terms), where)
        return Candidate(
            terms=terms,
            term_weights=weights,
            class_schedule=class_schedule,
            term_schedule=term_schedule,
            name=str(raw.get("name") or raw.get("loss") or "+".join(map(str, raw["terms"]))),
            absent_classes=_absent_classes(raw.get("absent_classes", "keep"), where),
            param_schedule=(
                _schedule(raw["param_schedule"], f"{where}.param_schedule")
                if "param_schedule" in raw
                else None
            ),
        )
    except ConfigError:
        raise
    except KeyError as exc:
        raise ConfigError(f"{where}.loss", str(exc.args[0])) from None
    except (LossSyntaxError, ValueError, TypeError) as exc:
        raise ConfigError(where, str(exc)) from None


def _absent_classes(raw: Any, where: str) -> str:
    if raw not in ABSENT_CLASSES:
        raise ConfigError(
            f"{where}.absent_classes", f"one of {', '.join(ABSENT_CLASSES)}, got {raw!r}"
        )
    return str(raw)


def _check_schedules(
    class_schedule: ScheduleSpec, term_schedule: ScheduleSpec, num_terms: int, where: str
) -> None:
    """Build both schedules once, so that a bad name or parameter is caught before training."""
    check_schedule(
        "class", class_schedule.name, dict(class_schedule.params), where=f"{where}.class_schedule"
    )
    check_schedule(
        "term",
        term_schedule.name,
        dict(term_schedule.params),
        num_terms=num_terms,
        where=f"{where}.term_schedule",
    )


def check_schedule(
    kind: str,
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    num_terms: int = 1,
    num_classes: int | None = None,
    where: str,
) -> None:
    """Build a schedule once, so that a bad name or parameter is caught before training.

    Args:
        kind: ``"class"`` (a class schedule) or ``"term"`` (a term schedule).
        name: the registry name (aliases allowed), e.g. ``"cbs"`` or ``"softadapt"``.
        params: the schedule's parameters (none by default).
        num_terms: the number of loss terms a term schedule is built for (some need exactly 2).
        num_classes: the number of classes a class schedule is built for; by default the length
            of its ``frequencies`` or ``weights`` parameter, else 3. Frequency schedules need no
            ``frequencies``: the trainer takes them from the training split.
        where: the key path of the schedule, for the error (``file: candidates[0].class_schedule``).

    Raises:
        ConfigError: an unknown name, an unknown parameter or a bad value. ``where`` is
            ``where.param`` when the message names one of ``params``, else ``where``.
        ValueError: ``kind`` is neither ``"class"`` nor ``"term"`` (a programming error).
    """
    if kind not in ("class", "term"):
        raise ValueError(f"kind must be 'class' or 'term', got {kind!r}")
    params = dict(params or {})
    try:
        if kind == "term":
            get_term_schedule(name, num_terms=num_terms, **params)
            return
        if num_classes is None:
            given = params.get("frequencies", params.get("weights"))
            num_classes = len(given) if isinstance(given, list | tuple) and given else 3
        get_class_schedule(name, num_classes=num_classes, **params)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        raise ConfigError(_named_key(where, params, message), message) from None


def _named_key(where: str, params: Mapping[str, Any], message: str) -> str:
    """``where.param`` for the parameter the message names first, else ``where``."""
    found = [
        (match.start(), name)
        for name in params
        if (match := re.search(rf"\b{re.escape(str(name))}\b", message))
    ]
    return f"{where}.{min(found)[1]}" if found else where


def _term(raw: Any, where: str) -> tuple:
    try:
        return resolve_loss(str(raw)).terms
    except KeyError as exc:
        raise ConfigError(where, str(exc.args[0])) from None


def read_yaml_mapping(path: Path) -> tuple[str, Mapping[str, Any]]:
    """The text of a YAML file and the mapping it holds.

    Raises:
        ConfigError: the file cannot be read, is malformed, or does not hold a mapping.
    """
    try:
        source = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from None
    return parse_yaml_mapping(source, path)


def parse_yaml_mapping(source: str, path: Path | str) -> tuple[str, Mapping[str, Any]]:
    """``source`` parsed as YAML holding a mapping; errors name ``path``."""
    try:
        raw = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"malformed YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(str(path), "the file must hold a mapping at the top level")
    return source, raw


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate a suite YAML file."""
    path = Path(path)
    _, raw = read_yaml_mapping(path)
    unknown = sorted(set(raw) - _SUITE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}", f"unknown key; known: {sorted(_SUITE_KEYS)}")
    candidates = raw.get("candidates") or []
    if not candidates:
        raise ConfigError(f"{path}: candidates", "the list of candidates is empty")
    parsed = tuple(parse_candidate(c, f"{path}: candidates[{i}]") for i, c in enumerate(candidates))
    try:
        data = DataConfig.from_dict(raw.get("data", {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: data", str(exc)) from None
    try:
        train_raw = dict(raw.get("train", {}))
        train = TrainConfig.from_dict(train_raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: train", str(exc)) from None
    names = [c.name for c in parsed]
    reference = str(raw.get("reference", names[0]))
    if reference not in names:
        raise ConfigError(f"{path}: reference", f"'{reference}' is not a candidate name ({names})")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds) or not seeds:
        raise ConfigError(f"{path}: seeds", f"a non-empty list of integers, got {seeds!r}")
    check_at_most(seeds, "seed", f"{path}: seeds")
    check_train_limits(train, f"{path}: train")
    check_data_limits(data, f"{path}: data")
    return SuiteConfig(
        candidates=parsed,
        data=data,
        train=train,
        seeds=tuple(seeds),
        experiment=str(raw.get("experiment", "losslab-baselines")),
        tracking_uri=raw.get("tracking_uri"),
        reference=reference,
    )
