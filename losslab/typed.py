"""Plain-data helpers shared by every typed configuration (no project imports: anyone may use it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

__all__ = ["from_mapping"]

T = TypeVar("T")


def from_mapping(cls: type[T], raw: Mapping[str, Any], what: str) -> T:
    """Build dataclass ``cls`` from a mapping; an unknown key is an error that names it."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{what} must be a mapping, got {type(raw).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown {what} key(s) {unknown}; known: {sorted(known)}")
    return cls(**dict(raw))
