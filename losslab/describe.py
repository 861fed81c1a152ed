"""How a candidate reads: one short line (:func:`describe_candidate`) and its flat,
readable parameters (:func:`candidate_params`), for MLflow, the console and the report.

- :func:`describe_candidate`: e.g. ``tversky(alpha=0.283, beta=0.901) + cbs(zeta=0.2)``: a
  term that is a library loss is named with the parameters that differ from the library's,
  a compound of library terms at their library weights by its name (``dice_ce``), any other
  expression printed with short numbers, a learned network by the start of its hash; then
  the class and term schedules with the parameters given, a replayed parameter schedule,
  train overrides (``lr=0.00312``).
- :func:`candidate_params` and :func:`param_text`: ``loss`` (the expression), ``loss.<k>``
  (the terms of a compound), ``loss.<parameter>``, ``term_weights``, ``class_schedule``
  and ``class_schedule.<parameter>`` (defaults included), ...; numbers to 4 significant
  digits; ``None`` and empty values left out.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from losslab.candidate import Candidate, ScheduleSpec

__all__ = [
    "candidate_params",
    "describe_candidate",
    "describe_loss",
    "param_text",
    "schedule_params",
    "short",
    "short_numbers",
]


_NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?:[eE][-+]?\d+)?")


_STATIC = {"class": "uniform", "term": "static"}


def short(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (``0.20672`` -> ``0.207``); others as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def short_numbers(text: str, digits: int = 3) -> str:
    """Every decimal number in ``text`` cut to ``digits`` significant digits."""
    return _NUMBER.sub(lambda m: short(float(m.group()), digits), text)


def _plain(value: Any, digits: int) -> Any:
    """JSON-able ``value`` with its floats rounded to ``digits`` significant digits."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{digits}g}")
    if isinstance(value, Mapping):
        return {str(k): _plain(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, digits) for v in value]
    return value


def param_text(value: Any, digits: int = 4) -> str | None:
    """An MLflow param value: floats to ``digits`` significant digits, lists and mappings as
    JSON; ``None`` for nothing to log (``None``, ``""``, an empty list or mapping)."""
    if value is None or (isinstance(value, str | list | tuple | Mapping) and not value):
        return None
    if isinstance(value, bool | int | str):
        return str(value)
    if isinstance(value, float):
        return short(value, digits)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(_plain(value, digits), default=str)
    return str(value)


@functools.lru_cache(maxsize=1)
def _library() -> tuple[dict[str, tuple[str, dict[str, float]]], dict[tuple, str]]:
    """Library terms by expression (name, default parameters); compounds by their parts."""
    from losslab.losses.library import LIBRARY

    singles: dict[str, tuple[str, dict[str, float]]] = {}
    compounds: dict[tuple, str] = {}
    for name, entry in LIBRARY.items():
        if entry.text is not None:
            spec = entry.build()
            singles.setdefault(spec.expression, (name, dict(spec.params)))
        else:
            compounds[tuple((part, float(w)) for part, w in entry.parts)] = name
    return singles, compounds


def _with_params(name: str, params: Mapping[str, Any]) -> str:
    inner = ", ".join(f"{k}={_value(v)}" for k, v in params.items())
    return f"{name}({inner})" if inner else name


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        items = [_value(v) for v in value[:4]]
        return "[" + ", ".join(items) + (", ..." if len(value) > 4 else "") + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return short_numbers(value) if isinstance(value, str) else short(value)


def _term(term: Any) -> tuple[str | None, str, dict[str, float]]:
    """(library name or None, text, parameters that differ from the library's)."""
    from losslab.losses.learned_term import is_learned

    if is_learned(term):
        return None, f"{str(term)[:20]}...", {}
    found = _library()[0].get(term.expression)
    if found is None:
        return None, short_numbers(str(term)), {}
    name, defaults = found
    changed = {k: v for k, v in term.params if defaults.get(k) != v}
    return name, name, changed


def describe_loss(candidate: Candidate) -> str:
    """The loss part of :func:`describe_candidate` (terms and their weights)."""
    terms = [_term(t) for t in candidate.terms]
    weights = candidate.term_weights
    if len(terms) == 1 and weights[0] == 1.0:
        return _with_params(terms[0][1], terms[0][2])
    if all(name for name, _, _ in terms):
        compound = _library()[1].get(tuple(zip((n for n, _, _ in terms), weights)))
        merged: dict[str, float] = {}
        for _, _, params in terms:
            for k, v in params.items():
                merged[k] = v if merged.get(k, v) == v else math.nan
        if compound and not any(isinstance(v, float) and math.isnan(v) for v in merged.values()):
            return _with_params(compound, merged)
    parts = []
    for (name, text, params), alpha in zip(terms, weights):
        label = _with_params(text, params) if name else f"({text})"
        parts.append(label if alpha == 1.0 else f"{short(alpha)}*{label}")
    return " + ".join(parts)


def _schedule(spec: ScheduleSpec) -> str:
    params = dict(spec.params)
    if spec.name == "rule" and "expression" in params:
        expression = short_numbers(str(params.pop("expression")))
        rest = _with_params("", params)[1:-1] if params else ""
        return f"rule({expression}{', ' + rest if rest else ''})"
    return _with_params(spec.name, params)


def _param_schedule(candidate: Candidate) -> str:
    """``piecewise: beta 0.7 -> 0.875 (3 changes)``: a replayed trajectory's start and end."""
    spec = candidate.param_schedule
    values = dict(spec.params).get("values", {})
    start = candidate.loss_parameters()
    moves = []
    for address, series in values.items():
        before = [start.get(address, series[0]), *series[:-1]]
        changes = sum(a != b for a, b in zip(before, series))
        if changes:
            plural = "s" * (changes != 1)
            moves.append(
                f"{address} {short(before[0])} -> {short(series[-1])} ({changes} change{plural})"
            )
        else:
            moves.append(f"{address} {short(before[0])} (unchanged)")
    return f"{spec.name}: " + ", ".join(moves)


def describe_candidate(candidate: Candidate, overrides: Mapping[str, Any] | None = None) -> str:
    """One short line that says what ``candidate`` (and its train ``overrides``) is."""
    text = describe_loss(candidate)
    for kind, spec in (("class", candidate.class_schedule), ("term", candidate.term_schedule)):
        if spec.name != _STATIC[kind] or spec.params:
            text += f" + {_schedule(spec)}"
    extras = []
    if candidate.param_schedule is not None:
        extras.append(_param_schedule(candidate))
    if candidate.absent_classes != "keep":
        extras.append(f"absent classes: {candidate.absent_classes}")
    extras.extend(f"{k}={_value(v)}" for k, v in (overrides or {}).items() if v is not None)
    return "; ".join([text, *extras])


def schedule_params(kind: str, spec: ScheduleSpec) -> dict[str, Any]:
    """``spec``'s parameters with the schedule's defaults for those not given (``kind``:
    ``class``, ``term`` or ``param``); only the given ones for an unknown schedule."""
    from losslab.schedules import registry

    tables = {
        "class": (registry._CLASS_SCHEDULES, registry._CLASS_ALIASES),
        "term": (registry._TERM_SCHEDULES, registry._TERM_ALIASES),
        "param": (registry._PARAM_SCHEDULES, {}),
    }
    table, aliases = tables[kind]
    given = dict(spec.params)
    try:
        cls = registry._resolve(kind, spec.name, table, aliases)
    except ValueError:
        return given
    defaults = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return {**defaults, **given}


def _expression(term: Any) -> str:
    return str(term) if not hasattr(term, "expression") else term.expression


def candidate_params(candidate: Candidate) -> dict[str, str]:
    """The candidate as readable MLflow params (see the module docstring)."""
    out: dict[str, Any] = {"candidate.name": candidate.name, "candidate.key": candidate.key}
    terms, weights = candidate.terms, candidate.term_weights
    if len(terms) == 1:
        out["loss"] = short_numbers(str(terms[0]), 4)
    else:
        out["loss"] = " + ".join(
            f"{short(a, 4)} * ({_expression(t)})" for t, a in zip(terms, weights)
        )
        for k, term in enumerate(terms):
            out[f"loss.{k}"] = short_numbers(str(term), 4)
    if len(terms) > 1 or weights[0] != 1.0:
        out["term_weights"] = ", ".join(short(a, 4) for a in weights)
    for address, value in candidate.loss_parameters().items():
        if not re.fullmatch(r"weight\d+", address):
            out[f"loss.{address}"] = value
    out["absent_classes"] = candidate.absent_classes
    schedules = [("class", candidate.class_schedule), ("term", candidate.term_schedule)]
    if candidate.param_schedule is not None:
        schedules.append(("param", candidate.param_schedule))
    for kind, spec in schedules:
        out[f"{kind}_schedule"] = spec.name
        for name, value in schedule_params(kind, spec).items():
            out[f"{kind}_schedule.{name}"] = value
    texts = {k: param_text(v) for k, v in out.items()}
    return {k: v for k, v in texts.items() if v is not None}
