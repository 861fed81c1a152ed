"""``resolve_loss``: the one entry from a loss's text to a loss: a library name, a learned
term (``lossnet:<hash>``) or an expression of the loss language.
"""

from __future__ import annotations

from losslab.losses.learned_term import LearnedTerm, is_learned
from losslab.losses.library import get_loss
from losslab.losses.ops import PARAMETERS, TERMINALS
from losslab.losses.spec import CompoundLoss, LossSpec, parse_loss

__all__ = ["resolve_loss"]


def resolve_loss(text: str, **params: float) -> LossSpec | CompoundLoss | LearnedTerm:
    """A library name (``"dice_ce"``), a learned term (``"lossnet:<hash>"``, see
    ``learned_term``) or, for any other text, a parsed expression.

    A bare identifier that is neither a terminal nor a parameter of the language is a name (so
    a typo gets the list of known losses); everything else (``"p * y"``, ``"nc"``) is parsed and
    gets the parser's message.

    Raises:
        KeyError: an unknown name.
        LossSyntaxError: an expression that does not parse, or a malformed learned term.
        ValueError: parameters given to a learned term (it has none).
    """
    name = text.strip()
    if is_learned(name):
        return LearnedTerm.parse(name).with_params(**params)
    if name.isidentifier() and name not in TERMINALS and name not in PARAMETERS:
        return get_loss(name, **params)
    return parse_loss(text, **params)
