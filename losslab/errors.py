"""The error of a configuration that cannot be accepted (light: imported before torch is).

:class:`ConfigError` is re-exported by :mod:`losslab.config`, where it has always been named.
"""

from __future__ import annotations

__all__ = ["ConfigError"]

_MOST_CHARS = 2000  # a message is read, not scrolled: a huge value is cut, never printed whole


class ConfigError(ValueError):
    """A configuration that cannot be accepted: ``where`` is ``file: key.path``."""

    def __init__(self, where: str, problem: str):
        if len(problem) > _MOST_CHARS:
            problem = problem[: _MOST_CHARS - 1] + "…"
        self.where, self.problem = where, problem
        super().__init__(f"{where}: {problem}" if where else problem)
