"""Expression trees of the loss language and their canonical printing.

A tree is made of five frozen, hashable node types. Structural equality is tree equality, so two
expressions that print the same are the same expression, and a tree can key a cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "BinOp",
    "Call",
    "Compare",
    "Neg",
    "Node",
    "Num",
    "Var",
    "bind_parameters",
    "children",
    "format_number",
    "has_gradient_path",
    "iter_nodes",
    "num",
    "to_source",
]


@dataclass(frozen=True)
class Num:
    """A non-negative numeric constant (a negative one is ``Neg(Num(...))``, as Python parses it)."""

    value: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.value) or self.value < 0:
            raise ValueError(
                f"Num holds a finite non-negative value, got {self.value!r}; use num()"
            )


@dataclass(frozen=True)
class Var:
    """A terminal (``p``, ``y``, ``w``...) or a named parameter (``gamma``...)."""

    name: str


@dataclass(frozen=True)
class Neg:
    """Unary minus."""

    operand: Node


@dataclass(frozen=True)
class BinOp:
    """``left op right`` with ``op`` one of ``+ - * / **``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare:
    """``left op right`` with ``op`` one of ``< <= > >=``; only the condition of ``where``."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    """A function or reduction applied to its arguments."""

    fn: str
    args: tuple[Node, ...]


Node = Num | Var | Neg | BinOp | Compare | Call


def num(value: float) -> Node:
    """A constant node for any finite value, negative ones as ``Neg(Num(-value))``."""
    value = float(value)
    return Neg(Num(-value)) if value < 0 else Num(value)


def format_number(value: float) -> str:
    """Canonical text of a number: shortest round-tripping repr, integers without ``.0``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-trees of a node, in source order."""
    if isinstance(node, Neg):
        return (node.operand,)
    if isinstance(node, (BinOp, Compare)):
        return (node.left, node.right)
    if isinstance(node, Call):
        return node.args
    return ()


def bind_parameters(node: Node, values: dict[str, float]) -> Node:
    """The tree with every ``Var`` named in ``values`` replaced by its constant."""
    if isinstance(node, Var):
        return num(values[node.name]) if node.name in values else node
    if isinstance(node, Neg):
        return Neg(bind_parameters(node.operand, values))
    if isinstance(node, (BinOp, Compare)):
        left, right = bind_parameters(node.left, values), bind_parameters(node.right, values)
        return type(node)(node.op, left, right)
    if isinstance(node, Call):
        return Call(node.fn, tuple(bind_parameters(a, values) for a in node.args))
    return node


def iter_nodes(node: Node):
    """Yield every node of the tree, parents before children."""
    yield node
    for child in children(node):
        yield from iter_nodes(child)


# Python's precedence, which the parser inherits: the printer must agree with it exactly.
_PRECEDENCE = {"cmp": 0, "+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "**": 4, "atom": 5}


def _precedence(node: Node) -> int:
    if isinstance(node, BinOp):
        return _PRECEDENCE[node.op]
    if isinstance(node, Compare):
        return _PRECEDENCE["cmp"]
    if isinstance(node, Neg):
        return _PRECEDENCE["neg"]
    return _PRECEDENCE["atom"]


def to_source(node: Node) -> str:
    """Print a tree as the canonical text that parses back to the same tree."""
    if isinstance(node, Num):
        return format_number(node.value)
    if isinstance(node, Var):
        return node.name
    if isinstance(node, Call):
        return f"{node.fn}({', '.join(to_source(a) for a in node.args)})"
    if isinstance(node, Neg):
        inner = to_source(node.operand)
        return f"-({inner})" if _precedence(node.operand) < _PRECEDENCE["neg"] else f"-{inner}"
    if isinstance(node, Compare):
        return f"{to_source(node.left)} {node.op} {to_source(node.right)}"
    prec = _PRECEDENCE[node.op]
    left, right = to_source(node.left), to_source(node.right)
    if node.op == "**":
        # Right-associative, and ``-a ** b`` means ``-(a ** b)``: parenthesise a left operand
        # that binds no tighter than the power itself.
        if _precedence(node.left) <= prec:
            left = f"({left})"
        if _precedence(node.right) < prec:
            right = f"({right})"
    else:
        # Left-associative: an equal-precedence right operand keeps its parentheses so that the
        # tree (not only the value) survives the round trip.
        if _precedence(node.left) < prec:
            left = f"({left})"
        if _precedence(node.right) <= prec:
            right = f"({right})"
    return f"{left} {node.op} {right}"


PREDICTIONS = frozenset({"p", "logp", "z"})


def has_gradient_path(tree: Node) -> bool:
    """Whether a prediction terminal is reachable outside the conditions of ``where``.

    Static and conservative: ``p * 0`` counts as a path. A search screens such degenerate losses
    with a gradient probe.
    """
    if isinstance(tree, Var):
        return tree.name in PREDICTIONS
    args = children(tree)
    if isinstance(tree, Call) and tree.fn == "where":
        args = args[1:]
    return any(has_gradient_path(arg) for arg in args)
