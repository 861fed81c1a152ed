"""Plain-data helpers shared by every typed configuration (no heavy imports: anyone may use it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from losslab.hints import did_you_mean
from losslab.strict_yaml import short_repr

__all__ = ["check_field_types", "from_mapping"]

T = TypeVar("T")


def from_mapping(cls: type[T], raw: Mapping[str, Any], what: str) -> T:
    """Build dataclass ``cls`` from a mapping; an unknown key is an error that names it."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{what} must be a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(map(str, set(raw) - known))
    if unknown:
        raise ValueError(
            f"unknown {what} key(s) {unknown}; {did_you_mean(unknown[0], known)}"
            f"known: {', '.join(sorted(known))}"
        )
    return cls(**dict(raw))


def check_field_types(instance: Any) -> None:
    """Check (and coerce int -> float) scalar fields against the type of their default.

    Raises:
        ValueError: naming the field, the value and the expected type.
    """
    from dataclasses import MISSING

    for f in fields(instance):
        if f.default is MISSING or f.default is None:
            continue
        value = getattr(instance, f.name)
        expected = type(f.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            object.__setattr__(instance, f.name, float(value))
            continue
        if expected in (bool, int, float, str) and (type(value) is not expected):
            raise ValueError(
                f"{type(instance).__name__}.{f.name}={short_repr(value)} must be "
                f"{expected.__name__}"
            )
