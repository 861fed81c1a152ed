"""The loss language (parse, print, compile) and the library of hand-designed losses."""

from __future__ import annotations

from losslab.losses.compiler import Terminals, signed_distance
from losslab.losses.learned_term import LearnedTerm, add_search_folder, find_network
from losslab.losses.library import UnusedParameterError, get_loss, list_losses, route_parameters
from losslab.losses.ops import FUNCTIONS, PARAMETERS, TERMINALS, Kind
from losslab.losses.parser import LossSyntaxError
from losslab.losses.resolve import resolve_loss
from losslab.losses.spec import (
    ABSENT_CLASSES,
    CompiledLoss,
    CompoundLoss,
    LossSpec,
    compile_terms,
    has_gradient_path,
    parse_loss,
    present_classes,
    reduce,
)
from losslab.losses.vocabulary import LOSS_VOCABULARY, Vocabulary

__all__ = [
    "ABSENT_CLASSES",
    "FUNCTIONS",
    "LOSS_VOCABULARY",
    "PARAMETERS",
    "TERMINALS",
    "CompiledLoss",
    "CompoundLoss",
    "Kind",
    "LearnedTerm",
    "LossSpec",
    "LossSyntaxError",
    "Terminals",
    "UnusedParameterError",
    "Vocabulary",
    "add_search_folder",
    "compile_terms",
    "find_network",
    "get_loss",
    "has_gradient_path",
    "resolve_loss",
    "list_losses",
    "parse_loss",
    "present_classes",
    "reduce",
    "route_parameters",
    "signed_distance",
]
