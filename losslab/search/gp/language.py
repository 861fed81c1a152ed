"""A vocabulary of the expression language as a strongly typed DEAP primitive set.

DEAP's types are the language's kinds, so crossover and mutation can only build trees that
type-check: a voxel tensor is never added to a class vector, a comparison only ever appears as
the condition of ``where``, a constant argument (``topk_mean``'s fraction, ``clamp``'s bounds)
only ever holds a number. The primitives are generated from the language itself: for every
operator and function of the vocabulary and every combination of argument kinds, the
language's own kind checker decides whether the combination is valid and what it returns.

A DEAP tree is never compiled by DEAP (``gp.compile`` calls ``eval``): :meth:`GpLanguage.to_node`
converts it to the language's own nodes, which print canonically, parse back and compile through
``losslab.losses`` like any hand-written loss; :meth:`GpLanguage.from_node` converts a
hand-written expression (a library loss, a seed rule) into a DEAP tree to seed a population.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from deap import gp

from losslab.losses.bounds import constant_value
from losslab.losses.nodes import BinOp, Call, Compare, Neg, Node, Num, Var, children, num
from losslab.losses.ops import Kind
from losslab.losses.parser import LossSyntaxError, kind_of
from losslab.losses.vocabulary import Vocabulary

__all__ = ["CONSTANTS", "FRACTIONS", "GpLanguage"]


# DEAP types: one class per kind, plus the condition of ``where``, constant-only arguments and
# the root. They must not inherit from each other (DEAP matches subclasses).
class Scalar: ...


class ClassVector: ...


class Voxel: ...


class ScalarCondition: ...


class ClassCondition: ...


class VoxelCondition: ...


class Constant: ...


class Root: ...


VALUE = {Kind.SCALAR: Scalar, Kind.CLASS: ClassVector, Kind.VOXEL: Voxel}
CONDITION = {Kind.SCALAR: ScalarCondition, Kind.CLASS: ClassCondition, Kind.VOXEL: VoxelCondition}
CODE = {Kind.SCALAR: "s", Kind.CLASS: "c", Kind.VOXEL: "v"}

# Numbers a random tree starts from; constant mutation moves them.
CONSTANTS = (0.1, 0.5, 1.0, 2.0, 1e-05)
FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)  # topk_mean's k, clamp's bounds
_BINARY = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow_op"}
_COMPARE = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
_NAMES = {**{v: k for k, v in _BINARY.items()}, **{v: k for k, v in _COMPARE.items()}}


def _noop(*args):  # DEAP wants a callable per primitive; ours are never called
    raise RuntimeError("GP trees are converted to the loss language, never called")


class GpLanguage:
    """The primitive set of one vocabulary and the conversions between DEAP and the language.

    Args:
        vocabulary: what an expression may name (``LOSS_VOCABULARY``, the rule vocabulary).
        terminals: the terminals a tree may use (default: all of the vocabulary's); a search
            may leave out expensive ones (``dist``).
    """

    def __init__(self, vocabulary: Vocabulary, terminals: Sequence[str] | None = None):
        self.vocabulary = vocabulary
        names = list(vocabulary.terminals) if terminals is None else list(terminals)
        unknown = [n for n in names if n not in vocabulary.terminals]
        if unknown:
            raise ValueError(f"unknown {vocabulary.name} terminal(s): {', '.join(unknown)}")
        self.terminal_names = tuple(names)
        self.kinds = sorted({vocabulary.terminals[n][0] for n in names} | {Kind.SCALAR})
        self._placeholder = {Kind.SCALAR: Num(1.0)}
        for name in names:
            self._placeholder.setdefault(vocabulary.terminals[name][0], Var(name))
        self.pset = gp.PrimitiveSetTyped(vocabulary.name, [], Root)
        self._signatures: dict[tuple, str] = {}
        self._build()

    # -- the primitive set -------------------------------------------------------------------

    def _kind(self, node: Node) -> Kind | None:
        try:
            return kind_of(node, vocabulary=self.vocabulary)
        except (LossSyntaxError, ValueError):
            return None

    def _add(self, name: str, args: list[type], ret: type, signature: tuple) -> None:
        self.pset.addPrimitive(_noop, args, ret, name=name)
        self._signatures[signature] = name

    def _build(self) -> None:
        pset, kinds = self.pset, self.kinds
        ph = self._placeholder
        for kind in kinds:
            self._add(f"neg_{CODE[kind]}", [VALUE[kind]], VALUE[kind], ("neg", kind))
        for (op, label), a, b in itertools.product(_BINARY.items(), kinds, kinds):
            kind = self._kind(BinOp(op, ph[a], ph[b]))
            if kind is not None:
                self._add(
                    f"{label}_{CODE[a]}{CODE[b]}", [VALUE[a], VALUE[b]], VALUE[kind], (op, a, b)
                )
        for (op, label), a, b in itertools.product(_COMPARE.items(), kinds, kinds):
            kind = self._kind(Call("where", (Compare(op, ph[a], ph[b]), ph[a], ph[b])))
            if kind is not None:
                name = f"{label}_{CODE[a]}{CODE[b]}"
                self._add(name, [VALUE[a], VALUE[b]], CONDITION[kind], (op, a, b))
        for fn, spec in self.vocabulary.functions.items():
            self._add_function(fn, spec.arity, spec.constant_args)
        for kind in sorted(self.vocabulary.results):  # a fixed order of the primitives
            if kind in kinds:
                self._add(f"root_{CODE[kind]}", [VALUE[kind]], Root, ("root", kind))
        for name in self.terminal_names:
            pset.addTerminal(name, VALUE[self.vocabulary.terminals[name][0]], name=name)
        for value in CONSTANTS:
            pset.addTerminal(value, Scalar)
        for value in FRACTIONS:
            pset.addTerminal(value, Constant)
        # DEAP's typed generators need a terminal of every type: a condition that compares a
        # value of the kind with one half, and a constant root (screened out as degenerate).
        for kind in kinds:
            pset.addTerminal(f"cond_{CODE[kind]}", CONDITION[kind], name=f"cond_{CODE[kind]}")
        pset.addTerminal("root_const", Root, name="root_const")

    def _add_function(self, fn: str, arity: int, constant_args: tuple[int, ...]) -> None:
        ph, kinds = self._placeholder, self.kinds
        choices = []
        for position in range(arity):
            if position in constant_args:
                choices.append([None])
            elif fn == "where" and position == 0:
                choices.append([("cond", k) for k in kinds])
            else:
                choices.append(kinds)
        for combo in itertools.product(*choices):
            args, types, code = [], [], ""
            for item in combo:
                if item is None:
                    args.append(Num(0.5))
                    types.append(Constant)
                    code += "k"
                elif isinstance(item, tuple):
                    args.append(Compare(">", ph[item[1]], ph[item[1]]))
                    types.append(CONDITION[item[1]])
                    code += CODE[item[1]].upper()
                else:
                    args.append(ph[item])
                    types.append(VALUE[item])
                    code += CODE[item]
            kind = self._kind(Call(fn, tuple(args)))
            if kind is not None:
                self._add(f"{fn}_{code}", types, VALUE[kind], (fn, *combo))

    # -- random trees ------------------------------------------------------------------------

    def generate(self, min_: int, max_: int, *, grow: bool, type_: type = Root) -> list:
        """A random tree (prefix list) of height in ``[min_, max_]`` returning ``type_``.

        DEAP's ``generate`` with one change: a type that has only terminals (the constant
        arguments) or only primitives takes what it has instead of failing. ``grow``: leaves
        at any depth from ``min_`` on (``genGrow``), else every leaf at the full height.
        Draws from the global ``random``, as DEAP's operators do.
        """
        pset = self.pset
        expr = []
        height = random.randint(min_, max_)
        stack = [(0, type_)]
        while stack:
            depth, kind = stack.pop()
            leaf = depth >= height or (
                grow and depth >= min_ and random.random() < pset.terminalRatio
            )
            if (leaf and pset.terminals[kind]) or not pset.primitives[kind]:
                expr.append(random.choice(pset.terminals[kind]))
            else:
                primitive = random.choice(pset.primitives[kind])
                expr.append(primitive)
                stack.extend((depth + 1, arg) for arg in reversed(primitive.args))
        return expr

    def ramped(self, min_: int, max_: int, type_: type = Root) -> list:
        """Ramped half-and-half: grown or full with equal probability."""
        return self.generate(min_, max_, grow=random.random() < 0.5, type_=type_)

    def subtree(self, pset=None, type_: type = Root) -> list:
        """A small grown subtree for subtree mutation (``gp.mutUniform``'s ``expr``)."""
        return self.generate(0, 2, grow=True, type_=type_)

    # -- conversions -------------------------------------------------------------------------

    def _condition_node(self, name: str) -> Node:
        kind = {CODE[k]: k for k in self.kinds}[name[-1]]
        return Compare(">", self._placeholder[kind], Num(0.5))

    def to_node(self, tree: Sequence) -> Node:
        """The language tree of a DEAP tree (prefix order); raises ``ValueError`` if malformed."""
        position = 0

        def build() -> Node:
            nonlocal position
            if position >= len(tree):
                raise ValueError("a DEAP tree ended early")
            item = tree[position]
            position += 1
            if isinstance(item, gp.Terminal):
                if item.name.startswith("cond_"):
                    return self._condition_node(item.name)
                if item.name == "root_const":
                    return Num(1.0)
                if isinstance(item.value, str):
                    return Var(item.value)
                return num(float(item.value))
            args = [build() for _ in range(item.arity)]
            head, _, _ = item.name.rpartition("_")
            if head == "neg":
                return Neg(args[0])
            if head == "root":
                return args[0]
            if head in ("add", "sub", "mul", "div", "pow_op"):
                return BinOp(_NAMES[head], *args)
            if head in ("lt", "le", "gt", "ge"):
                return Compare(_NAMES[head], *args)
            return Call(head, tuple(args))

        node = build()
        if position != len(tree):
            raise ValueError("a DEAP tree has nodes after its root")
        return node

    def from_node(self, node: Node) -> gp.PrimitiveTree:
        """The DEAP tree of a well-typed language tree whose parameters are bound.

        Raises:
            ValueError: the tree uses a name or a combination of kinds this primitive set does
                not have (a terminal left out, a parameter not bound).
        """
        items: list = []
        root_kind = self._kind(node)
        if root_kind is None or ("root", root_kind) not in self._signatures:
            raise ValueError(f"not a {self.vocabulary.name} of this primitive set: {node}")
        items.append(self.pset.mapping[self._signatures[("root", root_kind)]])
        self._emit(node, items, constant=False)
        return gp.PrimitiveTree(items)

    def _primitive(self, signature: tuple) -> gp.Primitive:
        if signature not in self._signatures:
            raise ValueError(f"no primitive for {signature}")
        return self.pset.mapping[self._signatures[signature]]

    def _emit(self, node: Node, items: list, *, constant: bool) -> None:
        if constant:
            value = constant_value(node)
            if value is None or value < 0:
                raise ValueError(f"a constant argument must be a number >= 0, got {node}")
            items.append(gp.Terminal(float(value), False, Constant))
            return
        if isinstance(node, Num):
            items.append(gp.Terminal(float(node.value), False, Scalar))
            return
        if isinstance(node, Var):
            if node.name not in self.terminal_names:
                raise ValueError(f"'{node.name}' is not a terminal of this search")
            items.append(self.pset.mapping[node.name])
            return
        kinds = tuple(self._kind(child) for child in children(node))
        if isinstance(node, Neg):
            items.append(self._primitive(("neg", kinds[0])))
        elif isinstance(node, (BinOp, Compare)):
            items.append(self._primitive((node.op, *kinds)))
        else:
            fn = self.vocabulary.functions[node.fn]
            combo = []
            for position, (child, kind) in enumerate(zip(node.args, kinds)):
                if position in fn.constant_args:
                    combo.append(None)
                elif node.fn == "where" and position == 0:
                    combo.append(("cond", self._kind(child)))
                else:
                    combo.append(kind)
            items.append(self._primitive((node.fn, *combo)))
            for position, child in enumerate(node.args):
                self._emit(child, items, constant=position in fn.constant_args)
            return
        for child in children(node):
            self._emit(child, items, constant=False)
