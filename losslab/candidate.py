"""``Candidate``: the frozen, JSON-serialisable record of one training objective.

Everything a search backend proposes, and every hand-designed baseline, is a Candidate: loss
terms written in the loss language, static term weights, and the names and parameters of a class
schedule and a term schedule. Its ``key`` is a hash of its canonical JSON, so two candidates that
define the same objective share a key (and a cached evaluation).

It lives below ``training`` and ``search`` because both use it; ``losslab.search`` re-exports it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from losslab.candidate_checks import check_candidate_dict
from losslab.losses import ABSENT_CLASSES, CompoundLoss, LossSpec, parse_loss, resolve_loss
from losslab.losses.learned_term import LearnedTerm, is_learned
from losslab.losses.ops import PARAMETERS

TERM_WEIGHT_RANGE = (0.0, 1e3)  # the range a greedy action or a schedule may give ``alpha_k``

__all__ = ["Candidate", "ScheduleSpec"]


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule by registry name with its parameters (plain data)."""

    name: str = "uniform"
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str, **params: Any) -> ScheduleSpec:
        return cls(name, tuple(sorted(params.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScheduleSpec:
        return cls.of(data["name"], **dict(data.get("params", {})))


@dataclass(frozen=True)
class Candidate:
    """One objective: ``L(t) = sum_k alpha_k(t) * mean_c(w_c(t) * L_kc)`` (docs/architecture.md, "The objective").

    Attributes:
        terms: the loss terms: expressions, or learned loss networks named by their content
            hash (``lossnet:<hash>``, :class:`~losslab.losses.learned_term.LearnedTerm`), so
            the key covers a network's weights too.
        term_weights: static ``alpha_k`` (the term schedule may change them over time).
        class_schedule: how the class weights ``w`` evolve (``uniform`` = all ones).
        term_schedule: how the term weights evolve (``static`` = ``term_weights``).
        name: a human label (not part of the key).
        absent_classes: ``keep`` (default, as MONAI) averages every class in ``mean_c``;
            ``ignore`` averages only the classes present in the batch, so a class absent from
            it neither dilutes the loss nor gets a constant, gradient-free term (see
            :func:`losslab.losses.reduce`). Part of the key only when not the default.
        param_schedule: the loss parameters' values over training steps (a greedy run's
            trajectory, ``piecewise``), by the addresses of :meth:`loss_parameters`; ``None``
            keeps them fixed. Part of the key only when set.

    Raises:
        LossSyntaxError: a term with no gradient path to the predictions (``vsum(y)``, ``1``).
        ValueError: a malformed candidate.
    """

    terms: tuple[LossSpec | LearnedTerm, ...]
    term_weights: tuple[float, ...] = ()
    class_schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    term_schedule: ScheduleSpec = field(default_factory=lambda: ScheduleSpec("static"))
    name: str = ""
    absent_classes: str = "keep"
    param_schedule: ScheduleSpec | None = None

    def __post_init__(self) -> None:
        if not self.terms:
            raise ValueError("a candidate needs at least one loss term")
        if self.absent_classes not in ABSENT_CLASSES:
            raise ValueError(
                f"candidate '{self.name}': absent_classes must be one of "
                f"{', '.join(ABSENT_CLASSES)}, got {self.absent_classes!r}"
            )
        for term in self.terms:
            term.require_trainable()
        if not self.term_weights:
            object.__setattr__(self, "term_weights", tuple(1.0 for _ in self.terms))
        if len(self.term_weights) != len(self.terms):
            raise ValueError(
                f"candidate '{self.name}': {len(self.terms)} terms but "
                f"{len(self.term_weights)} term weights"
            )
        object.__setattr__(self, "term_weights", tuple(float(a) for a in self.term_weights))
        most = TERM_WEIGHT_RANGE[1]
        for k, alpha in enumerate(self.term_weights):
            if not abs(alpha) <= most:  # NaN included
                raise ValueError(
                    f"candidate '{self.name}': term_weights[{k}]={alpha!r} is not within "
                    f"[-{most:g}, {most:g}], the range of a term weight"
                )
        if self.param_schedule is not None:
            self._check_param_schedule()

    def _check_param_schedule(self) -> None:
        from losslab.schedules import get_param_schedule

        spec = self.param_schedule
        schedule = get_param_schedule(spec.name, **dict(spec.params))
        known = self.loss_parameters()
        for address in schedule.addresses():
            if address not in known:
                raise ValueError(
                    f"candidate '{self.name}': param_schedule sets {address!r}, which is not a "
                    f"parameter of its loss; parameters: {', '.join(known) or '(none)'}"
                )
            low, high = self.parameter_range(address)
            for value in spec.to_dict()["params"]["values"][address]:
                if not low <= value <= high:
                    raise ValueError(
                        f"candidate '{self.name}': param_schedule gives {address}={value!r}, "
                        f"outside its range [{low:g}, {high:g}]"
                    )

    # -- loss parameters by address ------------------------------------------------------------

    def loss_parameters(self) -> dict[str, float]:
        """Every loss parameter and term weight by address, with its value.

        A parameter used by one term only is addressed by its name (``beta``); a name that
        several terms use by ``term<k>.<name>``; the static term weights are ``weight<k>``.
        """
        uses = Counter(name for term in self.terms for name, _ in term.params)
        out: dict[str, float] = {}
        for k, term in enumerate(self.terms):
            for name, value in term.params:
                out[name if uses[name] == 1 else f"term{k}.{name}"] = float(value)
        for k, alpha in enumerate(self.term_weights):
            out[f"weight{k}"] = alpha
        return out

    def _locate(self, address: str) -> tuple[int | None, str]:
        """``(term index, parameter name)``; ``(None, "weight<k>")`` for a term weight."""
        known = self.loss_parameters()
        if address not in known:
            raise ValueError(
                f"{address!r} is not a parameter of {self.name or 'the candidate'}; "
                f"parameters: {', '.join(known) or '(none)'}"
            )
        if address.startswith("weight") and address[6:].isdigit():
            return None, address
        if address.startswith("term") and "." in address:
            index, name = address[4:].split(".", 1)
            return int(index), name
        index = next(k for k, t in enumerate(self.terms) if address in t.parameters)
        return index, address

    def parameter_range(self, address: str) -> tuple[float, float]:
        """The closed range of values the parameter at ``address`` may take."""
        index, name = self._locate(address)
        if index is None:
            return TERM_WEIGHT_RANGE
        return PARAMETERS[name].low, PARAMETERS[name].high

    def with_loss_parameters(
        self, values: Mapping[str, float]
    ) -> tuple[tuple[LossSpec | LearnedTerm, ...], tuple[float, ...]]:
        """The terms and term weights with the parameters at ``values``' addresses changed.

        Raises:
            ValueError: an unknown address (the message lists the known ones) or a value out of
                the parameter's range.
        """
        per_term: list[dict[str, float]] = [{} for _ in self.terms]
        weights = list(self.term_weights)
        for address, value in values.items():
            index, name = self._locate(address)
            low, high = self.parameter_range(address)
            if not low <= float(value) <= high:
                raise ValueError(f"{address}={value!r} is outside its range [{low:g}, {high:g}]")
            if index is None:
                weights[int(name[6:])] = float(value)
            else:
                per_term[index][name] = float(value)
        terms = tuple(t.with_params(**p) if p else t for t, p in zip(self.terms, per_term))
        return terms, tuple(weights)

    @classmethod
    def from_loss(
        cls,
        loss: str | LossSpec | LearnedTerm | CompoundLoss | Sequence[LossSpec | LearnedTerm],
        *,
        name: str | None = None,
        class_schedule: ScheduleSpec | None = None,
        term_schedule: ScheduleSpec | None = None,
        absent_classes: str = "keep",
        **params: float,
    ) -> Candidate:
        """A candidate from a library name (``"dice_ce"``), loss text (``"lossnet:<hash>"``
        included), spec(s), learned term(s) or compound loss."""
        label = name
        if isinstance(loss, str):
            label = label or loss
            loss = resolve_loss(loss, **params)
        weights: tuple[float, ...] = ()
        if isinstance(loss, CompoundLoss):
            weights, terms = loss.weights, loss.terms
        elif isinstance(loss, LossSpec | LearnedTerm):
            terms = (loss,)
        else:
            terms = tuple(loss)
        return cls(
            terms=tuple(terms),
            term_weights=weights,
            class_schedule=class_schedule or ScheduleSpec(),
            term_schedule=term_schedule or ScheduleSpec("static"),
            name=label or " + ".join(t.expression for t in terms),
            absent_classes=absent_classes,
        )

    def to_dict(self) -> dict[str, Any]:
        data = {
            "terms": [str(t) for t in self.terms],
            "term_weights": list(self.term_weights),
            "class_schedule": self.class_schedule.to_dict(),
            "term_schedule": self.term_schedule.to_dict(),
            "name": self.name,
        }
        if self.absent_classes != "keep":  # the keys of earlier candidates stay as they were
            data["absent_classes"] = self.absent_classes
        if self.param_schedule is not None:
            data["param_schedule"] = self.param_schedule.to_dict()
        return data

    def canonical_json(self) -> str:
        """JSON of everything that defines the objective (not the name), with sorted keys."""
        data = self.to_dict()
        del data["name"]
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        """The candidate of its JSON form (:meth:`to_dict`).

        Raises:
            ValueError: a key at fault, named (``terms[0]: ...``; see ``candidate_checks``).
            LossSyntaxError: a term that does not parse or cannot be trained.
        """
        check_candidate_dict(data)
        return cls(
            terms=tuple(_parse_term(t) for t in data["terms"]),
            term_weights=tuple(data.get("term_weights", ())),
            class_schedule=ScheduleSpec.from_dict(data.get("class_schedule", {"name": "uniform"})),
            term_schedule=ScheduleSpec.from_dict(data.get("term_schedule", {"name": "static"})),
            name=data.get("name", ""),
            absent_classes=data.get("absent_classes", "keep"),
            param_schedule=(
                ScheduleSpec.from_dict(data["param_schedule"]) if "param_schedule" in data else None
            ),
        )

    @classmethod
    def from_json(cls, text: str) -> Candidate:
        return cls.from_dict(json.loads(text))

    def flat_params(self) -> dict[str, str]:
        """The candidate as readable MLflow params: ``candidate.name``, ``candidate.key``,
        ``loss`` (the expression), ``loss.<k>`` (a compound's terms), ``loss.<parameter>``,
        ``term_weights``, ``absent_classes``, ``class_schedule`` and
        ``class_schedule.<parameter>`` (its defaults too), the same for ``term_schedule`` and
        ``param_schedule``; numbers to 4 significant digits (``to_json`` keeps every digit),
        nothing empty (see :func:`losslab.describe.candidate_params`)."""
        from losslab.describe import candidate_params

        return candidate_params(self)

    def describe(self, overrides: Mapping[str, Any] | None = None) -> str:
        """One short line: ``tversky(alpha=0.283, beta=0.901) + cbs(zeta=0.2)`` (the parameters
        that differ from the library's and the schedules' given ones, short numbers; train
        ``overrides`` appended), as study tables and MLflow run names show it."""
        from losslab.describe import describe_candidate

        return describe_candidate(self, overrides)


def _parse_term(text: str) -> LossSpec | LearnedTerm:
    """A term of a candidate's JSON: ``lossnet:<hash>`` or a loss expression."""
    return LearnedTerm.parse(text) if is_learned(text) else parse_loss(text)
