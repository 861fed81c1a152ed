"""What an expression of the language may name: its terminals, parameters and functions.

The loss language and the language of class-weight rules (``losslab.schedules.rules``) share
one parser, printer, kind checker and compiler; they differ only in their vocabulary. A loss
names voxel tensors (``p``, ``y``...) and reduces them to a class vector; a rule names
per-class features of the training state (``s``, ``best``...) and computes the new weights.

Every function of the parser and compiler that reads names (``parse_expression``,
``check_tree``, ``kind_of``, ``compile_program``, ``bounds``) takes a ``vocabulary`` keyword;
it defaults to :data:`LOSS_VOCABULARY`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from losslab.losses.bounds import TERMINAL_BOUNDS, Interval
from losslab.losses.ops import FUNCTIONS, PARAMETERS, TERMINALS, Function, Kind, Parameter

__all__ = ["LOSS_VOCABULARY", "Vocabulary"]


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """The names an expression may use.

    Attributes:
        name: what an expression of this vocabulary is called in messages ("loss", "rule").
        terminals: name -> (kind, description) of the values an expression reads.
        parameters: named numeric parameters (bound to numbers in the spec's text).
        functions: the callable functions, a subset of :data:`losslab.losses.ops.FUNCTIONS`.
        results: the kinds a whole expression may have (a loss: a class vector or a scalar).
        terminal_bounds: the interval each terminal's values are guaranteed to lie in, for the
            compiler's decisions on saturation (see :mod:`losslab.losses.bounds`); a terminal
            not listed is unbounded, which is always safe.
    """

    name: str
    terminals: Mapping[str, tuple[Kind, str]]
    parameters: Mapping[str, Parameter] = field(default_factory=dict)
    functions: Mapping[str, Function] = field(default_factory=lambda: dict(FUNCTIONS))
    results: frozenset[Kind] = frozenset({Kind.CLASS, Kind.SCALAR})
    terminal_bounds: Mapping[str, Interval] = field(default_factory=dict)

    def __hash__(self) -> int:  # identity: vocabularies are module-level constants
        return id(self)


LOSS_VOCABULARY = Vocabulary(
    "loss", TERMINALS, PARAMETERS, FUNCTIONS, terminal_bounds=TERMINAL_BOUNDS
)
"""The loss language (parse, print, compile) and the library of hand-designed losses."""
