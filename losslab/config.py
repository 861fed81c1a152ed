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

from losslab.candidate import Candidate, ScheduleSpec
from losslab.data import DataConfig
from losslab.errors import ConfigError
from losslab.hints import unknown_key
from losslab.limits import CEILINGS, at_most, check_ceilings
from losslab.losses import ABSENT_CLASSES, LossSyntaxError, resolve_loss
from losslab.schedules import get_class_schedule, get_term_schedule
from losslab.schedules.rule_probe import check_rule_values
from losslab.schedules.rules import RuleSchedule
from losslab.strict_yaml import (
    YamlError,
    parse_yaml_mapping,
    read_text_file,
    read_yaml_mapping,
    short_repr,
)
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

# The ceilings of ``losslab.limits.CEILINGS`` by the names the typed configs check them under.
LIMITS = {
    name: CEILINGS[key].most
    for name, key in {
        "epochs": "train.epochs",
        "steps_per_epoch": "train.steps_per_epoch",
        "batch_size": "train.batch_size",
        "val_every": "train.val_every",
        "sw_batch_size": "train.sw_batch_size",
        "patch_size": "train.patch_size",
        "cases": "data.cases",
        "shape": "data.shape",
        "trials": "budget.trials",
        "minutes": "budget.minutes",
        "seed": "seed",
    }.items()
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
SUITE_KEYS = {"data", "train", "seeds", "experiment", "tracking_uri", "reference", "candidates"}


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
        if isinstance(v, int | float) and not isinstance(v, bool) and not abs(v) <= most:
            raise ConfigError(where, f"{short_repr(value)} is more than {most:,}, the most allowed")


def check_train_limits(train: TrainConfig, where: str) -> None:
    """Every numeric setting of a train config within its ceiling (``losslab.limits``;
    ``where.epochs``... names the key at fault)."""
    _check_fields(train, "train", where)


def check_data_limits(data: DataConfig, where: str) -> None:
    """Every numeric setting of a data config within its ceiling (``where.cases``...); the
    shape only where the data is generated (a folder's cases have their own)."""
    skip = () if data.source in ("phantom", "proxy") else ("shape",)
    _check_fields(data, "data", where, skip)


def _check_fields(config: Any, section: str, where: str, skip: tuple[str, ...] = ()) -> None:
    for key in CEILINGS:
        name = key.removeprefix(f"{section}.")
        if key.startswith(f"{section}.") and name not in skip and hasattr(config, name):
            at_most(getattr(config, name), key, f"{where}.{name}")


def _schedule(raw: Any, where: str) -> ScheduleSpec:
    if isinstance(raw, str):
        return ScheduleSpec.of(raw)
    if not isinstance(raw, Mapping) or "name" not in raw:
        raise ConfigError(where, "a schedule is a name or a mapping with 'name' and its parameters")
    params = {k: v for k, v in raw.items() if k != "name"}
    return ScheduleSpec.of(str(raw["name"]), **params)


def read_candidate_file(path: Any, where: str) -> Candidate:
    """A candidate from its JSON file (an MLflow run's ``candidate.json``, a study's
    ``best_candidate.json``: a replayed greedy schedule, a GP loss, a learned rule...), checked
    whole before anything uses it: its keys, its terms and both schedules built once.

    Raises:
        ConfigError: at ``where``, naming the file and the key at fault.
    """
    file = Path(str(path)).expanduser()
    try:
        data = json.loads(read_text_file(file, "candidate file"))
    except YamlError as exc:
        raise ConfigError(where, str(exc)) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(where, f"{file} is not JSON: {exc}") from None
    except RecursionError:
        raise ConfigError(where, f"{file} is nested too deeply to be a candidate") from None
    try:
        candidate = Candidate.from_dict(data)
    except (LossSyntaxError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(where, f"{file} is not a valid candidate: {exc}") from None
    try:
        _check_schedules(
            candidate.class_schedule, candidate.term_schedule, len(candidate.terms), ""
        )
    except ConfigError as exc:
        raise ConfigError(where, f"{file}: {exc.where.lstrip('.')}: {exc.problem}") from None
    return candidate


def parse_candidate(raw: Any, where: str) -> Candidate:
    """One candidate entry: ``loss`` (a library name or expression), ``terms`` (a list of them)
    or ``candidate`` (the path of a candidate JSON file, with an optional ``name``)."""
    if not isinstance(raw, Mapping):
        raise ConfigError(where, f"a candidate is a mapping, got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - _CANDIDATE_KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", unknown_key(unknown[0], _CANDIDATE_KEYS))
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
        schedule = get_class_schedule(name, num_classes=num_classes, **params)
        if isinstance(schedule, RuleSchedule):
            check_rule_values(schedule.rule, schedule.cap)
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


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate a suite YAML file."""
    path = Path(path)
    _, raw = read_yaml_mapping(path)
    unknown = sorted(set(map(str, raw)) - SUITE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}", unknown_key(unknown[0], SUITE_KEYS))
    check_ceilings(raw, f"{path}: ")
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
        raise ConfigError(
            f"{path}: seeds", f"a non-empty list of integers, got {short_repr(seeds)}"
        )
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
