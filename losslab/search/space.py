"""The search space of a study: which losses, class schedules, term schedules and train settings
a backend may choose, with the distributions of their parameters.

Spaces are conditional: a schedule's parameters are drawn only when that schedule is chosen.
In YAML (a mapping ``label -> option``, or a list of labels with default parameters)::

    space:
      loss:
        dice: {}
        focal: {gamma: {float: [0.5, 4.0]}}
        dice_ce: {term_weights: [1.0, {float: [0.25, 2.0]}]}
        wce_wdice: {terms: [ce, dice]}
      class_schedule:
        uniform: {}
        cbs: {zeta: {float: [0.05, 0.5]}, cap: {float: [1.5, 4.0]}}
        cbs_fast: {name: cbs, delta: 1}
      term_schedule: [static]
      train:
        lr: {float: [1.0e-4, 1.0e-2], log: true}

A loss option is a library name or an expression (``loss:``, default: its label) or several
(``terms:``); every other key is a loss parameter, plus ``term_weights``. A schedule option is a
registry name (``name:``, default: its label); every other key is a schedule parameter. ``train``
keys are :class:`TrainConfig` fields. Parameter names seen by a backend are dotted paths:
``loss``, ``loss.focal.gamma``, ``class_schedule.cbs.zeta``, ``train.lr``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from losslab.candidate import Candidate, ScheduleSpec
from losslab.losses import LossSpec, UnusedParameterError, resolve_loss, route_parameters
from losslab.search.distributions import Choice, Distribution, parse_distribution

__all__ = ["LossOption", "ScheduleOption", "SearchSpace", "SpaceError"]

Draw = Callable[[str, Distribution], Any]


class SpaceError(ValueError):
    """A bad search space; ``key`` is the dotted path of the culprit inside ``space``."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class LossOption:
    """One loss the space may choose: its terms, and distributions of parameters and weights."""

    label: str
    terms: tuple[str, ...]
    params: Mapping[str, Distribution] = field(default_factory=dict)
    term_weights: tuple[Distribution, ...] = ()

    def build(self, draw: Draw, prefix: str) -> tuple[tuple[LossSpec, ...], tuple[float, ...]]:
        specs: list[LossSpec] = []
        defaults: list[float] = []
        for text in self.terms:
            built = resolve_loss(text)
            specs.extend(term.require_trainable() for term in built.terms)
            # A single compound loss keeps its own weights; listed terms start at 1 each.
            own = getattr(built, "weights", None) if len(self.terms) == 1 else None
            defaults.extend(own or (1.0,) * len(built.terms))
        values = {name: draw(f"{prefix}.{name}", dist) for name, dist in self.params.items()}
        try:
            bound = route_parameters(specs, values, self.label)
        except UnusedParameterError as exc:
            raise SpaceError(f"{prefix}.{exc.unused[0]}", str(exc)) from None
        weights = tuple(defaults)
        if self.term_weights:
            if len(self.term_weights) != len(bound):
                raise SpaceError(
                    f"{prefix}.term_weights",
                    f"{len(self.term_weights)} weights for {len(bound)} terms",
                )
            weights = tuple(
                float(draw(f"{prefix}.alpha{k}", dist)) for k, dist in enumerate(self.term_weights)
            )
        return bound, weights


@dataclass(frozen=True)
class ScheduleOption:
    """One schedule the space may choose: registry name and parameter distributions."""

    label: str
    name: str
    params: Mapping[str, Distribution] = field(default_factory=dict)

    def build(self, draw: Draw, prefix: str) -> ScheduleSpec:
        return ScheduleSpec.of(
            self.name, **{k: draw(f"{prefix}.{k}", d) for k, d in self.params.items()}
        )


@dataclass(frozen=True)
class SearchSpace:
    """Losses x class schedules x term schedules x train settings (see the module docstring)."""

    losses: tuple[LossOption, ...] = ()
    class_schedules: tuple[ScheduleOption, ...] = (ScheduleOption("uniform", "uniform"),)
    term_schedules: tuple[ScheduleOption, ...] = (ScheduleOption("static", "static"),)
    train: Mapping[str, Distribution] = field(default_factory=dict)
    # Structural parts that a backend searches itself (expression trees...), by key, as written;
    # the backend that declares the key validates it (``SearchBackend.space_keys``).
    structure: Mapping[str, Any] = field(default_factory=dict)

    def build(self, draw: Draw) -> tuple[Candidate, dict[str, Any]]:
        """A candidate and its train overrides, each parameter taken from ``draw(name, dist)``.

        Raises:
            SpaceError: when a drawn combination is not a valid candidate (named), or the space
                has no ``loss`` options (a structural space: its backend builds candidates).
        """
        if not self.losses:
            raise SpaceError("space.loss", "this space has no loss options to draw from")
        loss = self._pick(draw, "loss", self.losses)
        terms, weights = loss.build(draw, f"loss.{loss.label}")
        class_opt = self._pick(draw, "class_schedule", self.class_schedules)
        term_opt = self._pick(draw, "term_schedule", self.term_schedules)
        overrides = {name: draw(f"train.{name}", dist) for name, dist in self.train.items()}
        label = "+".join(
            [loss.label]
            + ([class_opt.label] if class_opt.name != "uniform" else [])
            + ([term_opt.label] if term_opt.name != "static" else [])
        )
        candidate = Candidate(
            terms=terms,
            term_weights=weights,
            class_schedule=class_opt.build(draw, f"class_schedule.{class_opt.label}"),
            term_schedule=term_opt.build(draw, f"term_schedule.{term_opt.label}"),
            name=label,
        )
        return candidate, overrides

    @staticmethod
    def _pick(draw: Draw, name: str, options: tuple[Any, ...]) -> Any:
        if len(options) == 1:
            return options[0]
        label = draw(name, Choice(tuple(o.label for o in options)))
        return next(o for o in options if o.label == label)

    def sample(self, trial: Any) -> tuple[Candidate, dict[str, Any]]:
        """Draw from an Optuna trial (conditional: only the chosen options' parameters)."""
        return self.build(lambda name, dist: dist.suggest(trial, name))

    def from_params(self, params: Mapping[str, Any]) -> tuple[Candidate, dict[str, Any]]:
        """Rebuild the candidate of a finished trial from its parameters."""

        def draw(name: str, dist: Distribution) -> Any:
            if not dist.searched:
                return dist.values()[0]
            if name not in params:
                raise SpaceError(name, "missing from the trial's parameters")
            return params[name]

        return self.build(draw)

    def dimensions(self) -> int:
        """How many parameters a backend may draw (choices and searched parameters)."""
        count = sum(len(o) > 1 for o in (self.losses, self.class_schedules, self.term_schedules))
        for opt in (*self.losses, *self.class_schedules, *self.term_schedules):
            count += sum(d.searched for d in opt.params.values())
        count += sum(d.searched for o in self.losses for d in o.term_weights)
        return count + sum(d.searched for d in self.train.values())


def _distributions(raw: Mapping[str, Any], where: str, skip: set[str]) -> dict[str, Distribution]:
    out = {}
    for name, value in raw.items():
        if name in skip:
            continue
        try:
            out[str(name)] = parse_distribution(value)
        except ValueError as exc:
            raise SpaceError(f"{where}.{name}", str(exc)) from None
    return out


def _options(raw: Any, where: str) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, list):
        if not all(isinstance(x, str) for x in raw):
            raise SpaceError(where, "a list of options holds names only; use a mapping for params")
        raw = {x: {} for x in raw}
    if not isinstance(raw, Mapping):
        raise SpaceError(where, f"expected a mapping of options or a list of names, got {raw!r}")
    if not raw:
        raise SpaceError(where, "the space is empty: give at least one option")
    options = []
    for label, body in sorted(raw.items(), key=lambda item: str(item[0])):  # order-free
        body = {} if body is None else body
        if not isinstance(body, Mapping):
            raise SpaceError(
                f"{where}.{label}", f"an option is a mapping of parameters, got {body!r}"
            )
        options.append((str(label), body))
    return options


def parse_loss_options(raw: Any, where: str = "loss") -> tuple[LossOption, ...]:
    options = []
    for label, body in _options(raw, where):
        at = f"{where}.{label}"
        if "loss" in body and "terms" in body:
            raise SpaceError(at, "give 'loss' or 'terms', not both")
        terms = body.get("terms", [body.get("loss", label)])
        if not isinstance(terms, list) or not terms:
            raise SpaceError(f"{at}.terms", f"a non-empty list of losses, got {terms!r}")
        weights = body.get("term_weights", [])
        if not isinstance(weights, list):
            raise SpaceError(f"{at}.term_weights", f"a list (one per term), got {weights!r}")
        try:
            parsed_weights = tuple(parse_distribution(w) for w in weights)
        except ValueError as exc:
            raise SpaceError(f"{at}.term_weights", str(exc)) from None
        for dist in parsed_weights:
            if any(not isinstance(v, int | float) or v < 0 for v in dist.values()):
                raise SpaceError(f"{at}.term_weights", f"term weights are numbers >= 0: {dist}")
        options.append(
            LossOption(
                label,
                tuple(str(t) for t in terms),
                _distributions(body, at, {"loss", "terms", "term_weights"}),
                parsed_weights,
            )
        )
    return tuple(options)


def parse_schedule_options(raw: Any, where: str) -> tuple[ScheduleOption, ...]:
    return tuple(
        ScheduleOption(
            label, str(body.get("name", label)), _distributions(body, f"{where}.{label}", {"name"})
        )
        for label, body in _options(raw, where)
    )
