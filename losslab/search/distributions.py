"""Parameter distributions of a search space, written in YAML as::

    {float: [1.0e-4, 1.0e-2], log: true}     # a real in [low, high] (log scale)
    {float: [0.0, 1.0], step: 0.05}          # ... on a grid
    {int: [1, 5]}                            # an integer in [low, high]
    {choice: [uniform, tcf, cbs]}            # one of a list
    0.9                                      # a constant: not searched

They are plain data; backends draw from them through an Optuna trial (``suggest``) or a plain
random generator (``sample``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Choice", "Constant", "Distribution", "FloatRange", "IntRange", "parse_distribution"]

_KEYS = {"float", "int", "choice", "log", "step"}


class Distribution:
    """Base of the distributions; ``values()`` are the values worth checking at load time."""

    def values(self) -> list[Any]:
        raise NotImplementedError

    def suggest(self, trial: Any, name: str) -> Any:
        """Draw from an Optuna trial under ``name``."""
        raise NotImplementedError

    def sample(self, rng: random.Random) -> Any:
        """Draw with a plain random generator (backends that do not draw through Optuna)."""
        raise NotImplementedError

    @property
    def searched(self) -> bool:
        return True


@dataclass(frozen=True)
class Constant(Distribution):
    value: Any

    def values(self) -> list[Any]:
        return [self.value]

    def suggest(self, trial: Any, name: str) -> Any:
        return self.value

    def sample(self, rng: random.Random) -> Any:
        return self.value

    @property
    def searched(self) -> bool:
        return False


@dataclass(frozen=True)
class FloatRange(Distribution):
    low: float
    high: float
    log: bool = False
    step: float | None = None

    def values(self) -> list[Any]:
        return [self.low, self.high]

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)

    def sample(self, rng: random.Random) -> float:
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        value = rng.uniform(self.low, self.high)
        if self.step is not None:
            value = self.low + round((value - self.low) / self.step) * self.step
        return min(max(value, self.low), self.high)


@dataclass(frozen=True)
class IntRange(Distribution):
    low: int
    high: int
    log: bool = False
    step: int = 1

    def values(self) -> list[Any]:
        return [self.low, self.high]

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def sample(self, rng: random.Random) -> int:
        if self.log:
            return min(
                self.high, round(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
            )
        return rng.randrange(self.low, self.high + 1, self.step)


@dataclass(frozen=True)
class Choice(Distribution):
    options: tuple[Any, ...]

    def values(self) -> list[Any]:
        return list(self.options)

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.options))

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.options)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def parse_distribution(raw: Any) -> Distribution:
    """A distribution from its YAML form (see the module docstring).

    Raises:
        ValueError: naming what is wrong (unknown key, bounds in the wrong order, log with a
            non-positive bound, an empty choice).
    """
    if not isinstance(raw, Mapping):
        if isinstance(raw, list):
            raise ValueError(f"a list {raw!r} is not a distribution; write {{choice: {raw!r}}}")
        return Constant(raw)
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in a distribution; known: {sorted(_KEYS)}")
    kinds = [k for k in ("float", "int", "choice") if k in raw]
    if len(kinds) != 1:
        raise ValueError("a distribution has exactly one of 'float', 'int' or 'choice'")
    kind = kinds[0]
    if kind == "choice":
        options = raw["choice"]
        if not isinstance(options, list) or not options:
            raise ValueError(f"'choice' needs a non-empty list, got {options!r}")
        if set(raw) - {"choice"}:
            raise ValueError("'choice' takes no 'log' or 'step'")
        return Choice(tuple(options))
    bounds = raw[kind]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ValueError(f"'{kind}' needs [low, high], got {bounds!r}")
    low, high = (_number(b, f"'{kind}' bound") for b in bounds)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"'{kind}' bounds must be finite, got {bounds!r}")
    if not low < high:
        raise ValueError(f"'{kind}' needs low < high, got [{bounds[0]!r}, {bounds[1]!r}]")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"'log' must be true or false, got {log!r}")
    if log and low <= 0:
        raise ValueError(f"a log scale needs low > 0, got {bounds[0]!r}")
    step = raw.get("step")
    if step is not None and _number(step, "'step'") <= 0:
        raise ValueError(f"'step' must be > 0, got {step!r}")
    if log and step is not None:
        raise ValueError("'log' and 'step' cannot be combined")
    if kind == "int":
        if low != int(low) or high != int(high):
            raise ValueError(f"'int' bounds must be integers, got {bounds!r}")
        if step is not None and (isinstance(step, float) and not step.is_integer()):
            raise ValueError(f"an 'int' step must be a whole number, got {step!r}")
        return IntRange(int(low), int(high), log, int(step or 1))
    return FloatRange(low, high, log, None if step is None else float(step))
