"""Look up class and term schedules by name; the papers' short names are canonical, long names alias."""

from __future__ import annotations

from typing import Any

from losslab.hints import did_you_mean
from losslab.limits import at_most, ceiling_of
from losslab.schedules.adaptive_terms import CoVWeighting, SoftAdapt
from losslab.schedules.class_freezing import (
    ClassBoostStrategy,
    PlateauClassFreezing,
    ThresholdClassFreezing,
)
from losslab.schedules.class_schedules import (
    ClassSchedule,
    InverseFrequencyWeights,
    MedianFrequencyWeights,
    UniformWeights,
)
from losslab.schedules.param_schedules import ParamSchedule, PiecewiseParams
from losslab.schedules.rules import RuleSchedule
from losslab.schedules.term_schedules import (
    LinearRamp,
    Rebalance,
    StaticTermWeights,
    StepSwitch,
    TermSchedule,
)

_CLASS_SCHEDULES: dict[str, type[ClassSchedule]] = {
    cls.name: cls
    for cls in (
        UniformWeights,
        InverseFrequencyWeights,
        MedianFrequencyWeights,
        ThresholdClassFreezing,
        PlateauClassFreezing,
        ClassBoostStrategy,
        RuleSchedule,
    )
}
_CLASS_ALIASES = {
    "threshold_class_freezing": "tcf",
    "plateau_class_freezing": "pcf",
    "class_boost_strategy": "cbs",
    "median_frequency_balancing": "median_frequency",
}
_TERM_SCHEDULES: dict[str, type[TermSchedule]] = {
    cls.name: cls
    for cls in (StaticTermWeights, LinearRamp, StepSwitch, Rebalance, SoftAdapt, CoVWeighting)
}
_TERM_ALIASES = {"cov_weighting": "cov", "linear_ramp": "ramp"}
_PARAM_SCHEDULES: dict[str, type[ParamSchedule]] = {cls.name: cls for cls in (PiecewiseParams,)}


def _resolve(kind: str, name: str, table: dict[str, Any], aliases: dict[str, str]) -> Any:
    key = aliases.get(name.lower(), name.lower())
    if key not in table:
        valid = ", ".join(sorted([*table, *aliases]))
        hint = did_you_mean(name, [*table, *aliases])
        raise ValueError(f"unknown {kind} schedule {name!r}; {hint}valid names: {valid}")
    return table[key]


def _check_params(kind: str, name: str, cls: Any, params: dict[str, Any]) -> None:
    valid = cls.param_names()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for {kind} schedule {name!r}; "
            f"{did_you_mean(unknown[0], valid)}valid parameters: {', '.join(valid) or '(none)'}"
        )


def _check_ceilings(kind: str, params: dict[str, Any]) -> None:
    """The numbers of ``params`` within their ceilings (``losslab.limits``), checked after the
    schedule's own checks so that its messages (``threshold must be in [0, 1]``) come first."""
    section = {"parameter": "param_schedule"}.get(kind, f"{kind}_schedule")
    for param, value in params.items():
        if ceiling_of(f"{section}.{param}") is not None:
            at_most(value, f"{section}.{param}", param)


def list_class_schedules() -> list[str]:
    """Canonical names of the registered class schedules (aliases not listed)."""
    return list(_CLASS_SCHEDULES)


def get_class_schedule(name: str, *, num_classes: int, **params: Any) -> ClassSchedule:
    """Build the class schedule ``name`` (e.g. ``"pcf"`` or ``"plateau_class_freezing"``).

    Raises:
        ValueError: unknown name or parameter (the message names it and lists the valid ones), or
            a bad parameter value.
    """
    cls = _resolve("class", name, _CLASS_SCHEDULES, _CLASS_ALIASES)
    _check_params("class", name, cls, params)
    schedule = cls(num_classes, **params)
    _check_ceilings("class", params)
    return schedule


def list_term_schedules() -> list[str]:
    """Canonical names of the registered term schedules (aliases not listed)."""
    return list(_TERM_SCHEDULES)


def get_term_schedule(name: str, *, num_terms: int, **params: Any) -> TermSchedule:
    """Build the term schedule ``name`` (e.g. ``"softadapt"``); errors as :func:`get_class_schedule`."""
    cls = _resolve("term", name, _TERM_SCHEDULES, _TERM_ALIASES)
    _check_params("term", name, cls, params)
    schedule = cls(num_terms, **params)
    _check_ceilings("term", params)
    return schedule


def list_param_schedules() -> list[str]:
    """Names of the registered loss-parameter schedules."""
    return list(_PARAM_SCHEDULES)


def get_param_schedule(name: str, **params: Any) -> ParamSchedule:
    """Build the loss-parameter schedule ``name`` (``"piecewise"``); errors as
    :func:`get_class_schedule`."""
    cls = _resolve("parameter", name, _PARAM_SCHEDULES, {})
    _check_params("parameter", name, cls, params)
    schedule = cls(**params)
    _check_ceilings("parameter", params)
    return schedule
