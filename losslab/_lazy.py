"""Lazy package exports (PEP 562): a package names what it offers without importing it.

``import losslab.data`` then costs nothing until a name is used, so that the command line
(``losslab --help``) does not import torch, MONAI, MLflow or Optuna for commands that never
touch them. Every public name keeps working: ``from losslab.data import DataConfig`` imports
``losslab.data.config`` at that moment.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


class _LazyPackage(types.ModuleType):
    """A package module whose exports win over its submodules of the same name.

    ``losslab.data.augment`` is a module and ``losslab.data.augment`` the function it exports;
    importing the submodule sets the package attribute to the module, which this keeps to the
    exported function, as an eager ``from .augment import augment`` in ``__init__`` did.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        exports = self.__dict__.get("_lazy_exports", {})
        if (
            isinstance(value, types.ModuleType)
            and exports.get(name) == value.__name__
            and hasattr(value, name)
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``exports`` map a name to its module.

    Usage in a package ``__init__``::

        __getattr__, __dir__ = lazy_exports(__name__, {"DataConfig": "losslab.data.config"})
    """
    module = sys.modules[package]
    module.__dict__["_lazy_exports"] = dict(exports)
    module.__class__ = _LazyPackage

    def __getattr__(name: str) -> Any:
        source = exports.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        module.__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*module.__dict__, *exports})

    return __getattr__, __dir__
