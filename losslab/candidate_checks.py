"""The JSON form of a candidate checked key by key before it is built, so that a hand-written or
damaged ``candidate.json`` gets a message naming its key (``terms[1]: ...``), not a bare
``KeyError: 'terms'``.

::

    {"terms": ["1 - vsum(p * y) / vsum(p + y)"], "term_weights": [1.0],
     "class_schedule": {"name": "cbs", "params": {"zeta": 0.2}},
     "term_schedule": {"name": "static", "params": {}}, "name": "dice+cbs"}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from losslab.hints import did_you_mean
from losslab.strict_yaml import short_repr

__all__ = ["CANDIDATE_FILE_KEYS", "check_candidate_dict"]

CANDIDATE_FILE_KEYS = (
    "terms",
    "term_weights",
    "class_schedule",
    "term_schedule",
    "name",
    "absent_classes",
    "param_schedule",
)
# What a study writes beside the candidate in best_trial.json / best_candidate.json: the train
# settings its trial drew and the whole train config it trained with. They describe how the
# candidate was trained, not the objective, so they are checked as mappings and not read here.
CONTEXT_KEYS = ("overrides", "train")
# Keys of a study file's candidate entries that a candidate file writes otherwise.
_WRITTEN_AS = {"loss": "terms", "params": "terms", "weights": "term_weights"}


def check_candidate_dict(data: Any) -> None:
    """``data`` has the keys and value types of a candidate's JSON (see the module docstring).

    Raises:
        ValueError: ``key: problem`` for the first key at fault: not a mapping, an unknown key
            (with the closest known one), no ``terms``, a term that is not text, a term weight
            that is not a finite number, a schedule that is not ``{name, params}``.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a candidate is a JSON object, got {type(data).__name__}")
    for key in data:
        if key in CONTEXT_KEYS:
            if not isinstance(data[key], Mapping):
                raise ValueError(f"{key}: a mapping of train settings, got {short_repr(data[key])}")
            continue
        if key not in CANDIDATE_FILE_KEYS:
            hint = (
                f"did you mean '{_WRITTEN_AS[key]}'? "
                if key in _WRITTEN_AS
                else did_you_mean(key, CANDIDATE_FILE_KEYS)
            )
            raise ValueError(
                f"{short_repr(key)}: unknown key; {hint}a candidate file has "
                f"{', '.join(CANDIDATE_FILE_KEYS)} (its loss is 'terms', a list of expressions)"
            )
    if "terms" not in data:
        raise ValueError("terms: missing; a candidate file lists its loss expressions in 'terms'")
    terms = data["terms"]
    if not isinstance(terms, list) or not terms:
        raise ValueError(f"terms: a non-empty list of loss expressions, got {short_repr(terms)}")
    for k, term in enumerate(terms):
        if not isinstance(term, str) or not term.strip():
            raise ValueError(
                f"terms[{k}]: a loss expression as text (such as '1 - vsum(p * y) / vsum(y)'), "
                f"got {short_repr(term)}"
            )
    weights = data.get("term_weights", [])
    if not isinstance(weights, list):
        raise ValueError(f"term_weights: a list of numbers, got {short_repr(weights)}")
    for k, weight in enumerate(weights):
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"term_weights[{k}]: a number, got {short_repr(weight)}")
        if not math.isfinite(weight):
            raise ValueError(f"term_weights[{k}]: a finite number, got {weight!r}")
    for key in ("class_schedule", "term_schedule", "param_schedule"):
        if key in data:
            _check_schedule(data[key], key)
    if not isinstance(data.get("name", ""), str):
        raise ValueError(f"name: text, got {short_repr(data['name'])}")


def _check_schedule(raw: Any, key: str) -> None:
    if not isinstance(raw, Mapping):
        raise ValueError(f'{key}: {{"name": ..., "params": {{...}}}}, got {short_repr(raw)}')
    unknown = sorted(set(map(str, raw)) - {"name", "params"})
    if unknown:
        raise ValueError(f"{key}.{unknown[0]}: unknown key; a schedule has 'name' and 'params'")
    if not isinstance(raw.get("name"), str):
        raise ValueError(
            f"{key}.name: the schedule's name as text, got {short_repr(raw.get('name'))}"
        )
    if not isinstance(raw.get("params", {}), Mapping):
        raise ValueError(f"{key}.params: a mapping of parameters, got {short_repr(raw['params'])}")
