"""Parsing and kind checking of loss expressions.

Text is parsed with Python's :mod:`ast` and only a whitelist of node types is accepted; nothing is
ever evaluated. A loss text is one expression, optionally followed by parameter bindings::

    vmean(-(1 - p) ** gamma * y * logp); gamma=2

Every error is a :class:`LossSyntaxError` that quotes the text and points at the offending part.

The names an expression may use come from a :class:`~losslab.losses.vocabulary.Vocabulary`
(keyword ``vocabulary``, the loss language by default); the class-weight rules of
:mod:`losslab.schedules.rules` are the same language over another vocabulary.
"""

from __future__ import annotations

import ast
import math
import warnings

from losslab.losses.bounds import constant_value
from losslab.losses.nodes import (
    BinOp,
    Call,
    Compare,
    Neg,
    Node,
    Num,
    Var,
    children,
    iter_nodes,
    to_source,
)
from losslab.losses.ops import LIMIT, Kind, KindError, combine
from losslab.losses.vocabulary import LOSS_VOCABULARY, Vocabulary

__all__ = ["DEFAULT_MAX_NODES", "LossSyntaxError", "check_tree", "kind_of", "parse_expression"]

DEFAULT_MAX_NODES = 128
# Longer text cannot hold an expression of DEFAULT_MAX_NODES nodes and its bindings; refusing it
# before parsing keeps Python's recursive parser away from pathological input.
MAX_TEXT_LENGTH = 10_000

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_COMPARE = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


class LossSyntaxError(ValueError):
    """A loss expression (or a rule) that cannot be accepted, with the place at fault marked.

    Attributes:
        expression: the text as given (or the printed tree for a tree built in code).
        reason: what is wrong.
        span: ``(line, start, end)`` columns of the offending part, or ``None``.
        what: what the expression is (the vocabulary's name: ``"loss"``, ``"rule"``).
    """

    def __init__(
        self,
        reason: str,
        expression: str,
        span: tuple[int, int, int] | None = None,
        what: str = "loss",
    ):
        self.reason = reason
        self.expression = expression
        self.span = span
        self.what = what
        super().__init__(self._render())

    def __reduce__(self):  # picklable with all four arguments (workers send errors back)
        return type(self), (self.reason, self.expression, self.span, self.what)

    def _render(self) -> str:
        lines = self.expression.splitlines() or [""]
        if self.span is None:
            return f"{self.reason}\n  in {self.what} expression: {self.expression}"
        line, start, end = self.span
        text = lines[min(line, len(lines)) - 1]
        marker = " " * start + "^" * max(1, end - start)
        return f"{self.reason}\n  {text}\n  {marker}"


def _names(names) -> str:
    return ", ".join(names) or "(none)"


def _unknown_name(name: str, vocabulary: Vocabulary) -> str:
    message = f"unknown name '{name}'; terminals are {_names(vocabulary.terminals)}"
    if vocabulary.parameters:
        message += f", parameters are {_names(vocabulary.parameters)}"
    return message


def _kind_rule(node: Node, kinds: list[Kind], vocabulary: Vocabulary) -> Kind:
    """Kind of ``node`` from the kinds of its children (raises KindError)."""
    for position, child in enumerate(children(node)):
        if isinstance(child, Compare) and not (
            isinstance(node, Call) and node.fn == "where" and position == 0
        ):
            raise KindError("a comparison is only allowed as the condition of where")
    if isinstance(node, Num):
        return Kind.SCALAR
    if isinstance(node, Var):
        terminal = vocabulary.terminals.get(node.name)
        return terminal[0] if terminal is not None else Kind.SCALAR
    if isinstance(node, Neg):
        return kinds[0]
    if isinstance(node, (BinOp, Compare)):
        try:
            return combine(*kinds)
        except KindError as exc:
            raise KindError(f"in '{node.op}': {exc}") from None
    if isinstance(node, Call):
        fn = vocabulary.functions[node.fn]
        if node.fn == "where" and not isinstance(node.args[0], Compare):
            example = next(iter(vocabulary.terminals), "x")  # 'p' in a loss, 's' in a rule
            raise KindError(
                f"the first argument of where must be a comparison such as '{example} > 0.5'"
            )
        return fn.result(*kinds)
    raise TypeError(f"not a {vocabulary.name} expression node: {node!r}")


def _require_constant(node: Node, fn: str, position: int, vocabulary: Vocabulary) -> None:
    for sub in iter_nodes(node):
        if isinstance(sub, Var) and sub.name in vocabulary.terminals:
            raise KindError(
                f"argument {position + 1} of {fn} must be a number or a parameter, "
                f"not the terminal '{sub.name}'"
            )


def _check_call(fn_name: str, args: tuple[Node, ...], vocabulary: Vocabulary) -> None:
    fn = vocabulary.functions[fn_name]
    if len(args) != fn.arity:
        raise KindError(f"{fn_name} takes {fn.arity} argument(s), got {len(args)}")
    for position in fn.constant_args:
        _require_constant(args[position], fn_name, position, vocabulary)
    if fn_name == "topk_mean":
        k = constant_value(args[1])
        if k is not None and not 0 < k <= 1:
            raise KindError(f"the fraction k of topk_mean must lie in (0, 1], got {k:g}")


class _Converter:
    """Turns a whitelisted Python AST into a kind-checked tree, tracking the source spans."""

    def __init__(self, text: str, vocabulary: Vocabulary):
        self.text = text
        self.vocabulary = vocabulary
        self.count = 0

    def fail(self, reason: str, node: ast.AST) -> LossSyntaxError:
        line = getattr(node, "lineno", 1)
        start = getattr(node, "col_offset", 0)
        end = getattr(node, "end_col_offset", start + 1)
        if getattr(node, "end_lineno", line) != line:
            end = len(self.text.splitlines()[line - 1])
        return LossSyntaxError(reason, self.text, (line, start, end), self.vocabulary.name)

    def convert(self, node: ast.AST) -> tuple[Node, Kind]:
        self.count += 1
        tree, kids = self._build(node)
        try:
            if isinstance(tree, Call):
                _check_call(tree.fn, tree.args, self.vocabulary)
            return tree, _kind_rule(tree, kids, self.vocabulary)
        except KindError as exc:
            raise self.fail(str(exc), node) from None

    def _build(self, node: ast.AST) -> tuple[Node, list[Kind]]:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.fail(f"only numbers are allowed as constants, got {node.value!r}", node)
            if not math.isfinite(node.value) or abs(node.value) > LIMIT:
                raise self.fail(f"constants must lie within ±{LIMIT:g}", node)
            return Num(float(node.value)), []
        vocabulary = self.vocabulary
        if isinstance(node, ast.Name):
            if node.id not in vocabulary.terminals and node.id not in vocabulary.parameters:
                raise self.fail(_unknown_name(node.id, vocabulary), node)
            return Var(node.id), []
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand, kind = self.convert(node.operand)
            return (Neg(operand) if isinstance(node.op, ast.USub) else operand), [kind]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, lk = self.convert(node.left)
            right, rk = self.convert(node.right)
            return BinOp(_BINARY[type(node.op)], left, right), [lk, rk]
        if isinstance(node, ast.Compare):
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
                raise self.fail("only a single <, <=, > or >= comparison is allowed", node)
            left, lk = self.convert(node.left)
            right, rk = self.convert(node.comparators[0])
            return Compare(_COMPARE[type(node.ops[0])], left, right), [lk, rk]
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                reason = (
                    f"'{type(node.func).__name__}' is not part of the {vocabulary.name} language"
                )
                raise self.fail(reason, node.func)
            if node.func.id not in vocabulary.functions:
                raise self.fail(
                    f"unknown function '{node.func.id}'; functions are "
                    f"{_names(vocabulary.functions)}",
                    node.func,
                )
            if node.keywords:
                raise self.fail("keyword arguments are not allowed", node.keywords[0])
            converted = [self.convert(arg) for arg in node.args]
            args = tuple(c[0] for c in converted)
            return Call(node.func.id, args), [c[1] for c in converted]
        raise self.fail(
            f"'{type(node).__name__}' is not part of the {vocabulary.name} language", node
        )


def parse_expression(
    text: str, *, max_nodes: int = DEFAULT_MAX_NODES, vocabulary: Vocabulary = LOSS_VOCABULARY
) -> tuple[Node, Kind, dict[str, float]]:
    """Parse text into ``(tree, kind, bound parameters)``.

    ``vocabulary`` gives the names the text may use and the kinds its value may have (by
    default the loss language: a class vector or a scalar).

    Raises:
        LossSyntaxError: for anything outside the language, unknown names or parameters, kind
            errors, a result of a kind the vocabulary refuses (a loss that is a voxel tensor),
            or a tree of more than ``max_nodes`` nodes.
    """
    what = vocabulary.name
    if not isinstance(text, str) or not text.strip():
        raise LossSyntaxError(f"the {what} expression is empty", str(text), what=what)
    if len(text) > MAX_TEXT_LENGTH:
        raise LossSyntaxError(
            f"the {what} text has {len(text)} characters, more than the limit of {MAX_TEXT_LENGTH}",
            text[:80] + " ...",
            what=what,
        )
    try:
        return _parse(text, max_nodes, vocabulary)
    except (RecursionError, MemoryError):
        raise LossSyntaxError(
            f"the expression is nested too deeply to be a {what}", text[:80] + " ...", what=what
        ) from None


def _result_error(kind: Kind, vocabulary: Vocabulary, short: bool = False) -> str:
    """Why a whole expression of this kind is refused by the vocabulary."""
    what = vocabulary.name
    if kind is Kind.VOXEL and "vsum" in vocabulary.functions:
        if short:
            return f"the {what} is a voxel tensor; reduce it first"
        return (
            f"the {what} is a voxel tensor; reduce it with vsum, vmean or topk_mean to a class "
            "vector (and optionally csum or cmean to a scalar)"
        )
    allowed = " or ".join(k.description for k in sorted(vocabulary.results))
    return f"the {what} is {kind.description}; it must be {allowed}"


def _parse(
    text: str, max_nodes: int, vocabulary: Vocabulary
) -> tuple[Node, Kind, dict[str, float]]:
    what = vocabulary.name
    try:
        with warnings.catch_warnings():  # Python's own warnings on odd literals: not ours
            warnings.simplefilter("ignore")
            module = ast.parse(text.strip(), mode="exec")
    except SyntaxError as exc:
        column = (exc.offset or 1) - 1
        raise LossSyntaxError(
            f"not a valid expression: {exc.msg}",
            text.strip(),
            (exc.lineno or 1, column, column + 1),
            what,
        ) from None
    except ValueError as exc:  # e.g. a null byte
        raise LossSyntaxError(f"not a valid expression: {exc}", text.strip(), what=what) from None
    text = text.strip()
    converter = _Converter(text, vocabulary)
    if not module.body:
        raise LossSyntaxError(
            f"the {what} text holds no expression (only a comment?)", text, what=what
        )
    if not isinstance(module.body[0], ast.Expr):
        raise converter.fail("the text must start with an expression", module.body[0])
    count = sum(1 for _ in ast.walk(module.body[0]))  # iterative: safe on deep trees
    if count > 4 * max_nodes:  # ast counts contexts and operators too; the exact check is below
        raise converter.fail(
            f"the expression has more than {max_nodes} nodes, the limit", module.body[0]
        )
    params: dict[str, float] = {}
    for statement in module.body[1:]:
        name, value = _parse_binding(statement, converter)
        if name in params:
            raise converter.fail(f"parameter '{name}' is bound twice", statement)
        params[name] = value
    expression = module.body[0].value
    tree, kind = converter.convert(expression)
    if isinstance(tree, Compare):
        raise converter.fail("a comparison is only allowed as the condition of where", expression)
    if converter.count > max_nodes:
        raise converter.fail(
            f"the expression has {converter.count} nodes, more than the limit of {max_nodes}",
            expression,
        )
    if kind not in vocabulary.results:
        raise converter.fail(_result_error(kind, vocabulary), expression)
    return tree, kind, params


def _parse_binding(statement: ast.stmt, converter: _Converter) -> tuple[str, float]:
    if (
        not isinstance(statement, ast.Assign)
        or len(statement.targets) != 1
        or not isinstance(statement.targets[0], ast.Name)
    ):
        raise converter.fail(
            "after ';' only parameter bindings such as 'gamma=2' are allowed", statement
        )
    name = statement.targets[0].id
    parameters = converter.vocabulary.parameters
    if name not in parameters:
        raise converter.fail(
            f"unknown parameter '{name}'; parameters are {_names(parameters)}",
            statement.targets[0],
        )
    value_node = statement.value
    sign = 1.0
    if isinstance(value_node, ast.UnaryOp) and isinstance(value_node.op, ast.USub):
        sign, value_node = -1.0, value_node.operand
    if (
        not isinstance(value_node, ast.Constant)
        or isinstance(value_node.value, bool)
        or not isinstance(value_node.value, (int, float))
    ):
        raise converter.fail(f"parameter '{name}' must be bound to a number", statement.value)
    return name, sign * float(value_node.value)


def check_tree(
    tree: Node, *, max_nodes: int = DEFAULT_MAX_NODES, vocabulary: Vocabulary = LOSS_VOCABULARY
) -> Kind:
    """Kind-check a tree built in code (by a search backend); returns the kind of its value.

    Raises:
        LossSyntaxError: quoting the printed sub-expression at fault: an unknown name or
            function, a kind error, a comparison outside the condition of ``where``, a result
            of a kind the vocabulary refuses, more than ``max_nodes`` nodes.
    """
    what = vocabulary.name
    count = sum(1 for _ in iter_nodes(tree))
    if count > max_nodes:
        raise LossSyntaxError(
            f"the expression has {count} nodes, more than the limit of {max_nodes}",
            to_source(tree),
            what=what,
        )
    kind = _check_kinds(tree, tree, vocabulary)
    if isinstance(tree, Compare):
        raise LossSyntaxError(
            "a comparison is only allowed as the condition of where", to_source(tree), what=what
        )
    if kind not in vocabulary.results:
        raise LossSyntaxError(
            _result_error(kind, vocabulary, short=True), to_source(tree), what=what
        )
    return kind


def kind_of(node: Node, *, vocabulary: Vocabulary = LOSS_VOCABULARY) -> Kind:
    """The kind of a well-typed tree's value (voxel tensors included)."""
    return _check_kinds(node, node, vocabulary)


def _check_kinds(node: Node, root: Node, vocabulary: Vocabulary) -> Kind:
    what = vocabulary.name
    if isinstance(node, Num) and node.value > LIMIT:
        raise LossSyntaxError(f"constants must lie within ±{LIMIT:g}", to_source(root), what=what)
    if isinstance(node, Call) and node.fn not in vocabulary.functions:
        raise LossSyntaxError(
            f"unknown function '{node.fn}'; functions are {_names(vocabulary.functions)}",
            to_source(root),
            what=what,
        )
    if (
        isinstance(node, Var)
        and node.name not in vocabulary.terminals
        and node.name not in vocabulary.parameters
    ):
        raise LossSyntaxError(_unknown_name(node.name, vocabulary), to_source(root), what=what)
    kinds = [_check_kinds(child, root, vocabulary) for child in children(node)]
    try:
        if isinstance(node, Call):
            _check_call(node.fn, node.args, vocabulary)
        return _kind_rule(node, kinds, vocabulary)
    except KindError as exc:
        raise LossSyntaxError(
            f"{exc} (at '{to_source(node)}')", to_source(root), what=what
        ) from None
