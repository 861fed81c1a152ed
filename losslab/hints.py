"""Close-name suggestions for a mistyped key or name (``fidelty`` -> ``fidelity``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "unknown_key"]


def did_you_mean(word: object, options: Iterable[object]) -> str:
    """``"did you mean 'dice'? "`` for the closest of ``options`` to ``word`` (difflib's ratio
    of at least 0.6), else ``""``; ready to put in front of a list of the options."""
    names = [str(o) for o in options]
    folded = {_fold(n): n for n in reversed(names)}  # ``diceCE``, ``dice-ce`` -> ``dice_ce``
    if _fold(word) in folded:
        close = [folded[_fold(word)]]
    else:
        lower = {n.lower(): n for n in reversed(names)}
        close = [lower[c] for c in difflib.get_close_matches(str(word).lower(), lower, 1, 0.6)]
        starts = [n for n in names if len(_fold(word)) >= 3 and _fold(n).startswith(_fold(word))]
        if not close and len(starts) == 1:  # ``steps`` -> ``steps_per_epoch``
            close = starts
    return f"did you mean '{close[0]}'? " if close else ""


def _fold(name: object) -> str:
    return "".join(c for c in str(name).lower() if c.isalnum())


def unknown_key(key: object, known: Iterable[object]) -> str:
    """``"unknown key; did you mean 'fidelity'? known: backend, data, ..."``."""
    names = sorted(str(k) for k in known)
    return f"unknown key; {did_you_mean(key, names)}known: {', '.join(names)}"
