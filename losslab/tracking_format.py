"""How an evaluation reads, in MLflow and on the console (no MLflow here: see ``tracking``).

- :func:`describe_candidate`: one short line per candidate, e.g.
  ``tversky(alpha=0.283, beta=0.901) + cbs(zeta=0.2)``: a term that is a library loss is named
  with the parameters that differ from the library's, a compound of library terms at their
  library weights by its name (``dice_ce``), any other expression printed with short numbers, a
  learned network by the start of its hash; then the class and term schedules with the
  parameters given, a replayed parameter schedule, train overrides (``lr=0.00312``). The study
  table, the run names and the parent run's description all use it.
- :func:`run_name`: an evaluation's MLflow run name from its origin (``trial 4`` ->
  ``trial-004 <description>``, ``baseline X`` -> ``baseline X``).
- :func:`candidate_params` and :func:`param_text`: readable MLflow params: ``loss`` (the
  expression), ``loss.<k>`` (the terms of a compound), ``loss.<parameter>``, ``term_weights``,
  ``class_schedule`` and ``class_schedule.<parameter>`` (defaults included), ...; numbers to 4
  significant digits (``candidate.json`` keeps every digit); ``None`` and empty values left out.
- :func:`per_class_table`: the final per-class test metrics as columns (``log_table``).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from losslab.candidate import Candidate, ScheduleSpec
    from losslab.training.result import EpochRecord, Result

__all__ = [
    "BEST_MARK",
    "RUN_NAME_LIMIT",
    "RunRecord",
    "candidate_params",
    "describe_candidate",
    "epoch_metrics",
    "fit_name",
    "metric_key",
    "param_text",
    "per_class_csv",
    "per_class_table",
    "run_name",
    "schedule_params",
    "series_by_step",
    "short",
    "summary_metrics",
]

RUN_NAME_LIMIT = 250  # MLflow's longest run name
BEST_MARK = " ★ best"
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


# --- descriptions ---------------------------------------------------------------------------


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


def fit_name(name: str, limit: int = RUN_NAME_LIMIT) -> str:
    """``name`` cut to ``limit`` characters (MLflow's run-name limit)."""
    return name if len(name) <= limit else name[: limit - 3] + "..."


def run_name(origin: str, candidate: Candidate, overrides: Mapping[str, Any] | None = None) -> str:
    """The MLflow run name of an evaluation: ``trial 4`` -> ``trial-004 <description>``;
    ``baseline X`` (or any origin that names a baseline) -> itself; another origin ->
    ``<origin> <description>``; no origin (``losslab train``, a suite's run) -> the
    candidate's name, else its description."""
    origin = origin.strip()
    if not origin and candidate.name:
        return fit_name(candidate.name, RUN_NAME_LIMIT - len(BEST_MARK))
    found = re.fullmatch(r"trial (\d+)", origin)
    if found:
        origin = f"trial-{int(found.group(1)):03d}"
    elif "baseline" in origin.split():
        return fit_name(origin, RUN_NAME_LIMIT - len(BEST_MARK))
    description = describe_candidate(candidate, overrides)
    name = f"{origin} {description}" if origin else description
    return fit_name(name, RUN_NAME_LIMIT - len(BEST_MARK))


# --- params -----------------------------------------------------------------------------------


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


# --- per-class results ------------------------------------------------------------------------

_TABLE_METRICS = ("dice", "iou", "sensitivity", "precision", "hd95")


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def per_class_table(result: Result, shares: Sequence[float] | None = None) -> dict[str, list]:
    """Columns of the final per-class test metrics: ``class``, ``voxel_share`` (of the
    foreground, when ``shares`` is given: one per class, NaN for the background), one column per
    metric (``dice``, ``iou``, ``sensitivity``, ``precision``, ``hd95``, then any other), and
    ``cases`` (test cases holding the class) when known. NaN (a class absent from the test split)
    is ``None``."""
    names = list(result.class_names)
    table: dict[str, list] = {"class": names}
    if shares is not None and len(shares) == len(names):
        table["voxel_share"] = [_number(v) for v in shares]
    metrics = [m for m in _TABLE_METRICS if m in result.test_metrics]
    metrics += [m for m in result.test_metrics if m not in metrics]
    for metric in metrics:
        table[metric] = [_number(v) for v in result.test_metrics[metric]]
    per_case = result.test_cases.get("dice") or next(iter(result.test_cases.values()), None)
    if per_case:
        table["cases"] = [
            sum(not math.isnan(case[c]) for case in per_case) for c in range(len(names))
        ]
    return table


def per_class_csv(result: Result) -> str:
    """One row per class, one column per test metric."""
    metrics = list(result.test_metrics)
    lines = ["class," + ",".join(metrics)]
    for c, name in enumerate(result.class_names):
        values = [result.test_metrics[m][c] for m in metrics]
        lines.append(name + "," + ",".join("" if math.isnan(v) else f"{v:.6g}" for v in values))
    return "\n".join(lines) + "\n"


# --- metrics ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """What a search of runs returns (plain data, no MLflow types)."""

    run_id: str
    name: str
    status: str
    start_time: int
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]


def metric_key(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in name)


def _foreground_mean(values: Sequence[float]) -> float | None:
    foreground = [v for v in values[1:] if not math.isnan(v)]
    return sum(foreground) / len(foreground) if foreground else None


def epoch_metrics(
    class_names: Sequence[str], record: EpochRecord, term_names: Sequence[str] | None = None
) -> dict[str, float]:
    """One epoch's curves: ``train_loss``, ``val_dice/<class>`` and their foreground mean,
    ``weight/<class>``, ``term_weight/<term>`` (``losslab.losses.naming.term_labels``, given as
    ``term_names``; ``term_weight/<k>`` without them)."""
    metrics: dict[str, float] = {"train_loss": record.train_loss}
    for c, name in enumerate(class_names):
        metrics[f"val_dice/{name}"] = record.val_dice[c]
        metrics[f"weight/{name}"] = record.class_weights[c]
    mean = _foreground_mean(record.val_dice)
    if mean is not None:
        metrics["val_dice/mean"] = mean
    for k, alpha in enumerate(record.term_weights):
        name = term_names[k] if term_names is not None and k < len(term_names) else str(k)
        metrics[f"term_weight/{name}"] = alpha
    return metrics


def summary_metrics(result: Result) -> dict[str, float]:
    """The single values of a finished run: ``wall_time``, ``steps`` and each test metric's
    foreground mean ``test_<metric>/mean`` (per class: :func:`per_class_table`)."""
    metrics: dict[str, float] = {"wall_time": result.wall_time, "steps": result.steps}
    for metric, values in result.test_metrics.items():
        mean = _foreground_mean(values)
        if mean is not None:
            metrics[f"test_{metric}/mean"] = mean
    return metrics


def series_by_step(result: Result) -> list[tuple[int, dict[str, float]]]:
    """``result.series`` (name -> ``[[step, value], ...]``) regrouped by step, in order."""
    by_step: dict[int, dict[str, float]] = {}
    for name, points in result.series.items():
        for step, value in points:
            by_step.setdefault(int(step), {})[name] = float(value)
    return sorted(by_step.items())
