"""Readable labels of a candidate's loss terms (the term weights' curves and plot legend)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

__all__ = ["term_labels"]


@functools.lru_cache(maxsize=1)
def _library_expressions() -> dict[str, str]:
    """Expression -> name of the library's single-term losses (``dice``, ``ce``, ...)."""
    from losslab.losses.library import LIBRARY
    from losslab.losses.spec import parse_loss

    return {
        parse_loss(entry.text).expression: name
        for name, entry in LIBRARY.items()
        if entry.text is not None
    }


def term_labels(terms: Sequence[Any]) -> list[str]:
    """A label per loss term: its library name (``dice``, ``ce``, whatever its parameters),
    ``lossnet`` for a learned term, else ``term<k>``; a label that repeats gets its position
    (``dice#2``)."""
    known = _library_expressions()
    labels = []
    for k, term in enumerate(terms):
        expression = getattr(term, "expression", None)
        labels.append(known.get(expression, f"term{k}") if expression else "lossnet")
    return [
        f"{label}#{k + 1}" if labels.count(label) > 1 else label for k, label in enumerate(labels)
    ]
