"""A study file's ``space:`` section validated into a :class:`SearchSpace`: every option built
at the ends of its ranges, so that a loss, a schedule or a train setting that cannot be used is
refused when the file is loaded, naming its key (``space.loss.focal.gamma``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from losslab.config import LIMITS, ConfigError, check_at_most, check_schedule
from losslab.hints import did_you_mean, unknown_key
from losslab.search.distributions import Distribution, parse_distribution
from losslab.search.space import (
    SearchSpace,
    SpaceError,
    parse_loss_options,
    parse_schedule_options,
)
from losslab.training import TrainConfig

__all__ = ["parse_space"]

_SPACE_KEYS = {"loss", "class_schedule", "term_schedule", "train"}


def _check_loss_option(option: Any, where: str) -> None:
    def at(draw_values: dict[str, Any]) -> None:
        option.build(lambda name, dist: draw_values.get(name, dist.values()[0]), where)

    try:
        at({})
        for name, dist in option.params.items():
            for value in dist.values():
                at({f"{where}.{name}": value})
        for k, dist in enumerate(option.term_weights):
            for value in dist.values():
                at({f"{where}.alpha{k}": value})
    except SpaceError:
        raise
    except KeyError as exc:
        key = "loss" if len(option.terms) == 1 else "terms"
        raise SpaceError(f"{where}.{key}", str(exc.args[0])) from None
    except ValueError as exc:  # LossSyntaxError included: a bad expression or parameter value
        text = str(exc)
        bad = next((n for n in option.params if re.search(rf"\b{re.escape(n)}\b", text)), None)
        key = "loss" if len(option.terms) == 1 else "terms"
        raise SpaceError(f"{where}.{bad or key}", text) from None


def _check_schedule_option(option: Any, where: str, kind: str, num_terms: int = 2) -> None:
    """Build the schedule with its defaults and at both ends of every parameter's range (the
    same check as a suite's or a candidate's schedules: ``config.check_schedule``)."""
    draws = [{}] + [{n: v} for n, dist in option.params.items() for v in dist.values()]
    for params in draws:
        try:
            check_schedule(kind, option.name, params, num_terms=num_terms, where=where)
        except ConfigError as exc:
            raise SpaceError(exc.where, exc.problem) from None


def _check_train(params: Mapping[str, Distribution], where: str) -> None:
    known = {f.name for f in fields(TrainConfig)}
    for name, dist in params.items():
        if name not in known:
            raise SpaceError(
                f"{where}.{name}",
                f"not a train setting; {did_you_mean(name, known)}known: {', '.join(sorted(known))}",
            )
        if name == "seed":
            raise SpaceError(f"{where}.{name}", "the seed is the study's, not a search parameter")
        for value in dist.values():
            try:
                TrainConfig(**{name: value})
                if name in LIMITS:
                    check_at_most(value, name, f"{where}.{name}")
            except ConfigError as exc:
                raise SpaceError(exc.where, exc.problem) from None
            except (TypeError, ValueError) as exc:
                raise SpaceError(f"{where}.{name}", str(exc)) from None


def parse_space(raw: Any, structural: frozenset[str] = frozenset()) -> SearchSpace:
    """Validate a ``space`` mapping; every option is built at the ends of its ranges.

    ``structural`` are the keys the study's backend searches itself (expression trees...): they
    are kept as written in ``SearchSpace.structure`` for the backend to check. A space needs
    ``loss`` options unless it has a structural part.
    """
    if not isinstance(raw, Mapping) or not raw:
        raise SpaceError("space", "the search space is empty: give at least 'loss'")
    known = _SPACE_KEYS | structural
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpaceError(f"space.{unknown[0]}", unknown_key(unknown[0], known))
    structure = {str(k): v for k, v in raw.items() if k in structural}
    if "loss" not in raw and not structure:
        raise SpaceError("space.loss", "missing: give the losses to search over")
    losses = parse_loss_options(raw["loss"], "space.loss") if "loss" in raw else ()
    for option in losses:
        _check_loss_option(option, f"space.loss.{option.label}")
    schedules = {}
    for key, kind, default in (
        ("class_schedule", "class", "uniform"),
        ("term_schedule", "term", "static"),
    ):
        options = parse_schedule_options(raw.get(key, [default]), f"space.{key}")
        for option in options:
            _check_schedule_option(option, f"space.{key}.{option.label}", kind)
        schedules[key] = options
    train_raw = raw.get("train") or {}
    if not isinstance(train_raw, Mapping):
        raise SpaceError("space.train", f"a mapping of train settings, got {train_raw!r}")
    train = {}
    for name, value in train_raw.items():
        try:
            train[str(name)] = parse_distribution(value)
        except ValueError as exc:
            raise SpaceError(f"space.train.{name}", str(exc)) from None
    _check_train(train, "space.train")
    space = SearchSpace(
        losses, schedules["class_schedule"], schedules["term_schedule"], train, structure
    )
    for option in space.term_schedules:  # a term schedule must fit every loss's term count
        for loss in space.losses:
            count = len(loss.build(lambda n, d: d.values()[0], "x")[0])
            try:
                _check_schedule_option(option, "term_schedule", "term", num_terms=count)
            except SpaceError as exc:
                raise SpaceError(
                    f"space.term_schedule.{option.label}",
                    f"does not fit loss '{loss.label}' ({count} term(s)): {exc.problem}",
                ) from None
    return space
