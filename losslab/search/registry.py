"""Search backends by name.

The built-in backends are listed here by module and imported on first use (so that reading a
study file does not import Optuna, DEAP or ``higher`` for a backend it does not use). Another
backend registers with :func:`register_backend` and then gets the whole study machinery: the
ledger, the cache, resume, workers, MLflow, and its own section of the study file.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from losslab.search.backend import SearchBackend

__all__ = [
    "DEFAULT_BACKEND",
    "backend_names",
    "backend_space_keys",
    "get_backend",
    "register_backend",
]

DEFAULT_BACKEND = "optuna"  # a study file that names no backend

_BUILTIN = {
    "optuna": "losslab.search.optuna.backend:OptunaBackend",
    "gp": "losslab.search.gp.backend:GpBackend",
    "greedy": "losslab.search.greedy.backend:GreedyBackend",
    "ml3": "losslab.search.ml3.backend:Ml3Backend",
}
# The ``space_keys`` of the built-in backends, known without importing them, so that a study's
# space is checked before the heavy imports of its backend (a test holds them to the classes).
_BUILTIN_SPACE_KEYS = {
    "optuna": frozenset(),
    "gp": frozenset({"target", "seeds"}),
    "greedy": frozenset(),
    "ml3": frozenset({"target"}),
}
_REGISTERED: dict[str, type[SearchBackend]] = {}


def register_backend(cls: type[SearchBackend]) -> type[SearchBackend]:
    """Register ``cls`` under ``cls.name`` (usable as a class decorator)."""
    name = getattr(cls, "name", "")
    if not name or not name.isidentifier():
        raise ValueError(f"a backend needs a name that is an identifier, got {name!r}")
    known = _REGISTERED.get(name)
    if known is not None and known is not cls:
        raise ValueError(f"a backend named {name!r} is already registered ({known.__qualname__})")
    _REGISTERED[name] = cls
    return cls


def backend_names() -> list[str]:
    """Every backend a study may name, built-in and registered."""
    return sorted({*_BUILTIN, *_REGISTERED})


def get_backend(name: str) -> type[SearchBackend]:
    """The backend class called ``name``.

    Raises:
        ValueError: no backend of that name (the message lists the known ones).
    """
    if name not in _REGISTERED and name in _BUILTIN:
        module, _, attr = _BUILTIN[name].partition(":")
        register_backend(getattr(importlib.import_module(module), attr))
    if name not in _REGISTERED:
        raise ValueError(f"{name!r} is not a search backend; known: {', '.join(backend_names())}")
    return _REGISTERED[name]


def backend_space_keys(name: str) -> frozenset[str]:
    """The keys of ``space:`` that backend ``name`` searches itself (``SearchBackend.space_keys``),
    without importing a built-in backend.

    Raises:
        ValueError: no backend of that name.
    """
    if name not in _REGISTERED and name in _BUILTIN_SPACE_KEYS:
        return _BUILTIN_SPACE_KEYS[name]
    return frozenset(get_backend(name).space_keys)
