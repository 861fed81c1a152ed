"""The ``gp:`` section of a study file and the GP part of its space, validated before anything runs.

::

    backend: gp
    space:
      target: loss              # evolve loss expressions, or class_schedule (class-weight rules)
      seeds: [dice, ce, focal]  # first-population seeds (default: every library loss / TCF, PCF, CBS)
      class_schedule: uniform   # the fixed rest of every candidate (one option, no ranges)
    gp:
      population: 12            # individuals bred per generation (before screening)
      generations: 5            # the search stops after this many (or at the study's budget)
      cxpb: 0.5                 # crossover probability
      mutpb: 0.4                # mutation probability (subtree, point or constant)
      height_limit: 10          # static height limit of a tree (bloat control)
      tournament_size: 3
      parsimony: 0.002          # fitness penalty per node in selection (parsimony pressure)
      screen_steps: 150         # Adam steps of the raw-logit screen
      cap: 2.0                  # largest weight a learned rule may give (target class_schedule)

An error is a ``ValueError`` whose message starts with the key path (``gp.population: ...``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from losslab.limits import CEILINGS
from losslab.search.gp.evolution import Variation

__all__ = ["GpSettings", "check_settings"]

_LEAST = {  # the most of each is its ceiling in losslab.limits (gp.<key>)
    "population": 2,
    "generations": 1,
    "height_limit": 2,
    "tournament_size": 1,
    "screen_steps": 10,
    "init_min_height": 1,
    "init_max_height": 1,
}
_INTS = {key: (least, int(CEILINGS[f"gp.{key}"].most)) for key, least in _LEAST.items()}
_PROBABILITIES = ("cxpb", "mutpb")
_FLOATS = {
    "parsimony": (0.0, CEILINGS["gp.parsimony"].most),
    "cap": (1e-6, CEILINGS["gp.cap"].most),
}


@dataclass(frozen=True)
class GpSettings:
    """The validated ``gp:`` section (see the module docstring)."""

    population: int = 12
    generations: int = 5
    screen_steps: int = 150
    cap: float = 2.0
    variation: Variation = field(default_factory=Variation)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("population", "generations", "screen_steps", "cap")}
        out.update({f.name: getattr(self.variation, f.name) for f in fields(Variation)})
        return out


def check_settings(raw: Mapping[str, Any]) -> GpSettings:
    """The settings of a ``gp:`` section; unknown keys and bad values are named."""
    known = {*_INTS, *_PROBABILITIES, *_FLOATS}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"gp.{key}"
        if key not in known:
            raise ValueError(f"{where}: unknown key; known keys: {', '.join(sorted(known))}")
        if key in _INTS:
            low, high = _INTS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{where}: an integer in [{low}, {high}], got {value!r}")
        else:
            low, high = (0.0, 1.0) if key in _PROBABILITIES else _FLOATS[key]
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or not low <= value <= high
            ):
                raise ValueError(f"{where}: a number in [{low:g}, {high:g}], got {value!r}")
            value = float(value)
        values[key] = value
    variation_keys = {f.name for f in fields(Variation)}
    variation = Variation(**{k: v for k, v in values.items() if k in variation_keys})
    if variation.init_min_height > variation.init_max_height:
        raise ValueError(
            f"gp.init_min_height: {variation.init_min_height} is above gp.init_max_height "
            f"({variation.init_max_height})"
        )
    if variation.init_max_height > variation.height_limit:
        raise ValueError(
            f"gp.init_max_height: {variation.init_max_height} is above gp.height_limit "
            f"({variation.height_limit})"
        )
    top = {k: v for k, v in values.items() if k not in variation_keys}
    return GpSettings(**top, variation=variation)
