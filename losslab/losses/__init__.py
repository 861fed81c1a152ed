"""The loss language (parse, print, compile) and the library of hand-designed losses."""

from __future__ import annotations

from losslab.losses.compiler import Terminals, signed_distance
from losslab.losses.library import get_loss, list_losses, resolve_loss
from losslab.losses.ops import FUNCTIONS, PARAMETERS, TERMINALS, Kind
from losslab.losses.parser import LossSyntaxError
from losslab.losses.spec import (
    CompiledLoss,
    CompoundLoss,
    LossSpec,
    compile_terms,
    parse_loss,
    reduce,
)

__all__ = [
    "FUNCTIONS",
    "PARAMETERS",
    "TERMINALS",
    "CompiledLoss",
    "CompoundLoss",
    "Kind",
    "LossSpec",
    "LossSyntaxError",
    "Terminals",
    "compile_terms",
    "get_loss",
    "resolve_loss",
    "list_losses",
    "parse_loss",
    "reduce",
    "signed_distance",
]
