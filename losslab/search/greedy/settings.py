"""The ``greedy:`` section of a study file and the starts of a greedy study, validated before
anything runs.

::

    backend: greedy
    space:
      loss:                      # the starts: each option with fixed values (its defaults)
        tversky: {}              # alpha=0.3, beta=0.7
        f_beta: {beta: 1.5}
    greedy:
      params: [beta]             # addresses steered in every start (default: every tunable
                                 # parameter of each start; eps and term weights excluded)
      # params: {tversky: [alpha, beta], f_beta: [beta]}   # or per start
      term_weights: false        # also steer the term weights (weight0, weight1...) of compound starts
      every: 10                  # optimiser steps between decisions
      lookahead: 2               # training steps each combination is tried for
      step: 0.1                  # x (1 -/+ step), or -/+ step for parameters in [0, 1]
      score: soft_dice           # or dice (hard): per class on the validation patches
      max_joint: 4               # above this many parameters: one parameter at a time
      batched_lookahead: auto    # auto (on a CUDA device), on or off: a decision's
                                 # combinations train as one population

An error is a ``ValueError`` whose message starts with the key path (``greedy.every: ...``).
YAML reads a bare ``on`` / ``off`` as true / false; both spellings are taken. How the
look-ahead runs is not part of a steered run's key: it changes the scores by float rounding only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from losslab.candidate import Candidate
from losslab.limits import at_most
from losslab.search.greedy.controller import BATCHED_MODES, GreedyPlan
from losslab.search.space import SearchSpace, SpaceError
from losslab.training import TrainConfig

__all__ = [
    "UNTUNED",
    "GreedySettings",
    "check_every",
    "check_plans",
    "check_settings",
    "plan_for",
    "starts_of",
]

UNTUNED = frozenset({"eps"})  # smoothing constants: not a parameter a greedy run should steer
SCORES = ("soft_dice", "dice")
_KEYS = (
    "params",
    "term_weights",
    "every",
    "lookahead",
    "step",
    "score",
    "max_joint",
    "batched_lookahead",
)


@dataclass(frozen=True)
class GreedySettings:
    """The validated ``greedy:`` section (see the module docstring)."""

    params: Any = None  # None, a tuple of addresses, or {start label: tuple of addresses}
    term_weights: bool = False
    every: int = 10
    lookahead: int = 2
    step: float = 0.1
    score: str = "soft_dice"
    max_joint: int = 4
    batched_lookahead: str = "auto"


def _positive_int(value: Any, where: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where}: an integer >= {low}, got {value!r}")
    return value


def _addresses(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: a non-empty list of parameter names, got {value!r}")
    return tuple(dict.fromkeys(value))


def check_settings(raw: Mapping[str, Any]) -> GreedySettings:
    """The settings of a ``greedy:`` section; unknown keys and bad values are named."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"greedy.{key}"
        if key not in _KEYS:
            raise ValueError(f"{where}: unknown key; known keys: {', '.join(_KEYS)}")
        if key in ("every", "lookahead", "max_joint"):
            values[key] = _positive_int(value, where)
            at_most(value, where)
        elif key == "step":
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not 0 < value < 1
            ):
                raise ValueError(f"{where}: a number in (0, 1), got {value!r}")
            values[key] = float(value)
        elif key == "score":
            if value not in SCORES:
                raise ValueError(f"{where}: one of {', '.join(SCORES)}, got {value!r}")
            values[key] = value
        elif key == "batched_lookahead":
            if isinstance(value, bool):  # YAML 1.1: a bare on / off is a boolean
                value = "on" if value else "off"
            if value not in BATCHED_MODES:
                raise ValueError(f"{where}: one of {', '.join(BATCHED_MODES)}, got {value!r}")
            values[key] = value
        elif key == "term_weights":
            if not isinstance(value, bool):
                raise ValueError(f"{where}: true or false, got {value!r}")
            values[key] = value
        elif isinstance(value, Mapping):
            if not value:
                raise ValueError(f"{where}: an empty mapping; give a list or one list per start")
            values[key] = {str(k): _addresses(v, f"{where}.{k}") for k, v in value.items()}
        else:
            values[key] = _addresses(value, where)
    return GreedySettings(**values)


def check_every(settings: GreedySettings, train: TrainConfig) -> None:
    """A run of ``train`` (the study's train config at its fidelity) makes at least one decision:
    ``every`` is fewer steps than the run, whose decisions fall at steps ``every, 2 every...``.

    Raises:
        ValueError: ``greedy.every: ...`` naming both step counts.
    """
    total = train.epochs * train.steps_per_epoch
    if settings.every >= total:
        raise ValueError(
            f"greedy.every: {settings.every} steps between decisions, but a run is {total} steps "
            f"({train.epochs} epochs x {train.steps_per_epoch} steps at the study's fidelity), "
            f"so no decision would be made; give at most {max(total - 1, 1)}"
        )


def starts_of(space: SearchSpace) -> list[tuple[str, Candidate]]:
    """The starting candidates: one per ``space.loss`` option, with the fixed schedules.

    Raises:
        SpaceError: no loss option, a searched range anywhere, or a choice of schedules.
    """
    if not space.losses:
        raise SpaceError("space.loss", "the greedy backend needs the losses to start from")
    for where, options in (
        ("space.class_schedule", space.class_schedules),
        ("space.term_schedule", space.term_schedules),
    ):
        if len(options) != 1:
            raise SpaceError(where, f"the greedy backend needs one option, got {len(options)}")
    for option in (*space.losses, *space.class_schedules, *space.term_schedules):
        searched = [k for k, d in option.params.items() if d.searched]
        weights = getattr(option, "term_weights", ())
        searched += [f"term_weights.{i}" for i, d in enumerate(weights) if d.searched]
        if searched:
            raise SpaceError(
                f"space.{option.label}.{searched[0]}",
                "the greedy backend starts from fixed values; a searched range belongs to the "
                "optuna backend",
            )
    if space.train and any(d.searched for d in space.train.values()):
        raise SpaceError("space.train", "the greedy backend takes no searched train settings")
    starts = []
    for option in space.losses:
        candidate, _ = SearchSpace(
            losses=(option,),
            class_schedules=space.class_schedules,
            term_schedules=space.term_schedules,
        ).build(lambda name, dist: dist.values()[0])
        starts.append((option.label, candidate))
    return starts


def plan_for(label: str, candidate: Candidate, settings: GreedySettings) -> GreedyPlan:
    """What the greedy run of one start steers.

    Raises:
        ValueError: ``greedy.params`` names a parameter the start's loss does not have, or the
            start has no tunable parameter (the message names the key and the start).
    """
    known = candidate.loss_parameters()
    chosen = settings.params
    where = "greedy.params"
    if isinstance(chosen, dict):
        chosen, where = chosen.get(label), f"greedy.params.{label}"
    if chosen is None:
        chosen = tuple(
            a for a in known if not a.startswith("weight") and a.rpartition(".")[2] not in UNTUNED
        )
        if settings.term_weights and len(candidate.terms) > 1:
            chosen += tuple(a for a in known if a.startswith("weight"))
        if not chosen:
            raise ValueError(
                f"{where}: the start {label!r} ({candidate.terms[0]}) has no tunable parameters "
                f"(it has: {', '.join(known)}); give it another loss or name what to steer"
            )
    for address in chosen:
        if address not in known:
            raise ValueError(
                f"{where}: {address!r} is not a parameter of the start {label!r}; "
                f"its parameters: {', '.join(known)}"
            )
    return GreedyPlan(
        addresses=tuple(chosen),
        every=settings.every,
        lookahead=settings.lookahead,
        step=settings.step,
        score=settings.score,
        max_joint=settings.max_joint,
    )


def check_plans(space: SearchSpace, settings: GreedySettings) -> None:
    """Every start has a plan, and a per-start ``greedy.params`` names only starts."""
    starts = starts_of(space)
    labels = [label for label, _ in starts]
    if isinstance(settings.params, dict):
        for label in settings.params:
            if label not in labels:
                raise ValueError(
                    f"greedy.params.{label}: not a start; the starts (space.loss): "
                    f"{', '.join(labels)}"
                )
    for label, candidate in starts:
        plan_for(label, candidate, settings)
