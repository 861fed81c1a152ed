"""Exact rewrites of a loss tree before it is compiled: fewer passes, the same numbers.

A searched loss runs at every training step over ``[B, C, *spatial]``, and a random tree holds
operations whose result is known without computing them. Each rewrite here gives the same
values and the same gradients as the tree it replaces, on the inputs the language's contract
allows (``losslab.losses.bounds``), ties included; ``tests/losses/test_protected_ops.py``
compiles 150 random trees with and without them and compares both in float64.

- :func:`decided`: a ``where`` whose comparison the bounds decide, a ``min`` / ``max`` whose
  arguments' intervals are strictly apart: the argument it always takes (``min(logp, 1)`` is
  ``logp``).
- :func:`absolute`: ``min(x, -x)`` is ``-abs(x)``, ``max(x, -x)`` is ``abs(x)``.
- negations (:func:`simplify`, which applies all three bottom-up): a negation moves out through products, sums, the numerator of a
  division, ``where`` and the linear reductions (``vmean(where(c, 2, -x))`` is
  ``-vmean(where(c, -2, x))``: the negation of a ``[C]`` vector instead of a pass over the
  voxels and one back); two negations cancel, ``a + (-b)`` is ``a - b``, ``abs(-x)`` is
  ``abs(x)``. IEEE negation is exact and the saturations are symmetric, so every value is the
  same number.
"""

from __future__ import annotations

from losslab.losses.bounds import constant_value, decided_argument
from losslab.losses.nodes import BinOp, Call, Compare, Neg, Node, has_gradient_path
from losslab.losses.parser import kind_of
from losslab.losses.vocabulary import LOSS_VOCABULARY, Vocabulary

__all__ = ["absolute", "decided", "simplify"]

_LINEAR = frozenset({"vsum", "vmean", "csum", "cmean"})  # reductions that commute with -x


def decided(node: Node, vocabulary: Vocabulary) -> Node | None:
    """The argument a ``where`` / ``min`` / ``max`` always takes by the bounds
    (:func:`~losslab.losses.bounds.decided_argument`), else ``None``.

    Only when it has the node's kind (so that the value keeps its shape) and keeps a gradient
    path where the node had one (``max(p, y + 2)`` stays: its zero gradient still reaches
    ``p``, so a loss is trainable, or not, whatever the bounds decide).
    """
    chosen = decided_argument(node, vocabulary)
    if chosen is None or kind_of(chosen, vocabulary=vocabulary) != kind_of(
        node, vocabulary=vocabulary
    ):
        return None
    if vocabulary is LOSS_VOCABULARY and has_gradient_path(node) and not has_gradient_path(chosen):
        return None
    return chosen


def absolute(node: Node, vocabulary: Vocabulary) -> Node | None:
    """``-abs(x)`` for ``min(x, -x)`` and ``abs(x)`` for ``max(x, -x)`` (either order, each
    side as the bounds leave it: ``min(min(logp, 1), -logp)`` too), else ``None``: the same
    values and gradients (on the tie ``x = 0`` torch gives each side half the gradient,
    ``1/2 - 1/2 = 0``, which is ``abs``'s there), in two passes over the voxels where the
    minimum, the negation and their backwards take eight."""
    if not (isinstance(node, Call) and node.fn in ("min", "max")):
        return None
    a, b = node.args  # simplified first (:func:`simplify` works bottom-up)
    if b == Neg(a):
        x = a
    elif a == Neg(b):
        x = b
    else:
        return None
    magnitude = Call("abs", (x,))
    return magnitude if node.fn == "max" else Neg(magnitude)


def _negation(node: Node) -> Node | None:
    """``x`` when ``node`` is ``-x`` of a non-constant ``x`` (a negative number stays one)."""
    if isinstance(node, Neg) and constant_value(node.operand) is None:
        return node.operand
    return None


def _negated(node: Node) -> Node:
    """``-node``, a double negation cancelled."""
    return node.operand if isinstance(node, Neg) else Neg(node)


def simplify(node: Node, vocabulary: Vocabulary) -> Node:
    """``node`` rewritten bottom-up (see the module docstring): each sub-tree's arguments
    first, then what the bounds decide (:func:`decided`), ``abs`` (:func:`absolute`) and, in
    the loss language, the negations moved outwards."""
    negations = vocabulary is LOSS_VOCABULARY
    if isinstance(node, Neg):
        inner = simplify(node.operand, vocabulary)
        if not negations or constant_value(inner) is not None:
            return Neg(inner)
        return _negated(inner)
    if isinstance(node, Compare):
        return Compare(node.op, simplify(node.left, vocabulary), simplify(node.right, vocabulary))
    if isinstance(node, BinOp):
        left, right = simplify(node.left, vocabulary), simplify(node.right, vocabulary)
        return _binary(node.op, left, right) if negations else BinOp(node.op, left, right)
    if not isinstance(node, Call):
        return node
    node = Call(node.fn, tuple(simplify(arg, vocabulary) for arg in node.args))
    if (chosen := decided(node, vocabulary)) is not None:
        return chosen  # already simplified: an argument
    if (same := absolute(node, vocabulary)) is not None:
        return same if not negations or isinstance(same, Call) else _negated(same.operand)
    return _call(node.fn, node.args) if negations else node


def _binary(op: str, left: Node, right: Node) -> Node:
    a, b = _negation(left), _negation(right)
    if op == "*" and (a is not None or b is not None):
        product = BinOp("*", left if a is None else a, right if b is None else b)
        return product if (a is None) == (b is None) else Neg(product)
    if op == "/" and a is not None:  # the numerator only: the floor of -0 is not -(floor of 0)
        return Neg(BinOp("/", a, right))
    if op == "+" and b is not None:
        return Neg(BinOp("+", a, b)) if a is not None else BinOp("-", left, b)
    if op == "+" and a is not None:
        return BinOp("-", right, a)
    if op == "-" and b is not None:
        return BinOp("-", b, a) if a is not None else BinOp("+", left, b)
    if op == "-" and a is not None:
        return Neg(BinOp("+", a, right))
    return BinOp(op, left, right)


def _call(fn: str, args: tuple[Node, ...]) -> Node:
    if fn in _LINEAR and (x := _negation(args[0])) is not None:
        return Neg(Call(fn, (x, *args[1:])))
    if fn == "abs" and (x := _negation(args[0])) is not None:
        return Call("abs", (x,))
    if fn == "where":
        cond, a, b = args
        x, y = _negation(a), _negation(b)
        if x is not None and (y is not None or constant_value(b) is not None):
            return Neg(Call("where", (cond, x, _negated(b) if y is None else y)))
        if y is not None and constant_value(a) is not None:
            return Neg(Call("where", (cond, _negated(a), y)))
    return Call(fn, args)
