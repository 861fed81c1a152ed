"""Static bounds of loss expressions: the interval every sub-tree's values lie in.

The compiler uses them to decide where protection is needed and where it would only distort the
loss. ``vsum(y) ** 2`` is a count squared, at most ``MAX_VOXELS ** 2``, which float32 holds
exactly enough, so it is computed as a plain power; saturating it at ``LIMIT`` (what the
protected power does for an unknown base) would flatten Sudre's GDL weights on any batch of more
than a million voxels per class. Conversely, a product of two unbounded factors (``exp(z) *
exp(z)``) may overflow float32 and is saturated.

The bounds hold on the inputs a training run produces, which is the contract of the language:

- ``p``, ``y``, ``fg`` in ``[0, 1]``;
- logits ``z`` within ``±MAX_LOGIT`` (a network beyond that has diverged; the trainer then stops
  the run as failed on its first non-finite value), so ``logp`` in ``[-2 MAX_LOGIT - log C, 0]``;
- ``dist`` within ``±MAX_DISTANCE`` voxels, class weights ``w`` in ``[0, MAX_WEIGHT]``;
- at most ``MAX_VOXELS`` voxels in a batch and ``MAX_CLASSES`` classes.

Intervals are computed in float64 with Python floats; ``inf`` stands for "no bound".

A tree of another vocabulary (the class-weight rules) is bounded with that vocabulary's
``terminal_bounds`` and parameters: a terminal it gives no interval is unbounded, even where a
loss parameter has the same name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from losslab.losses.nodes import BinOp, Call, Compare, Neg, Node, Num, Var, children
from losslab.losses.ops import _EXP_MAX, EPS, LIMIT, PARAMETERS

if TYPE_CHECKING:
    from losslab.losses.vocabulary import Vocabulary

__all__ = [
    "EXACT_MAX",
    "MAX_CLASSES",
    "MAX_LOGIT",
    "MAX_VOXELS",
    "Interval",
    "bounds",
    "constant_value",
    "decided_argument",
    "exact_power_is_safe",
    "integer_exponent",
    "needs_saturation",
]

Interval = tuple[float, float]

MAX_LOGIT = 1e4
MAX_VOXELS = 2.0**33  # 8.6e9 voxels in one batch: 8 volumes of 1024^3
MAX_CLASSES = 1e4
MAX_DISTANCE = 1e4
MAX_WEIGHT = 1e6
# Values proven to stay within this bound need no saturation: float32 holds 3.4e38, and a bound
# of 1e20 leaves room for a gradient to multiply two such factors without overflowing.
EXACT_MAX = 1e20
MAX_EXACT_EXPONENT = 8

_INF = math.inf
_ALL: Interval = (-_INF, _INF)

TERMINAL_BOUNDS: dict[str, Interval] = {
    "p": (0.0, 1.0),
    "y": (0.0, 1.0),
    "fg": (0.0, 1.0),
    "z": (-MAX_LOGIT, MAX_LOGIT),
    "logp": (-2 * MAX_LOGIT - math.log(MAX_CLASSES), 0.0),
    "dist": (-MAX_DISTANCE, MAX_DISTANCE),
    "w": (0.0, MAX_WEIGHT),
    "nc": (1.0, MAX_CLASSES),
}


def _mul(a: float, b: float) -> float:
    if a == 0 or b == 0:  # 0 * inf is 0 here: a zero factor is exactly zero
        return 0.0
    return a * b


def _span(values: list[float]) -> Interval:
    values = [v for v in values if not math.isnan(v)]
    return (min(values), max(values)) if values else _ALL


def _magnitude(iv: Interval) -> float:
    return max(abs(iv[0]), abs(iv[1]))


def _saturated(iv: Interval) -> Interval:
    return (max(iv[0], -LIMIT), min(iv[1], LIMIT))


def mul_interval(a: Interval, b: Interval) -> Interval:
    return _span([_mul(x, y) for x in a for y in b])


def div_interval(a: Interval, b: Interval) -> Interval:
    """``safe_div``: ``|b|`` floored at ``EPS`` with its sign, the result saturated."""
    lo, hi = b
    candidates = [x for x in (lo, hi) if abs(x) >= EPS]
    if lo < EPS and hi > -EPS:  # the denominator may come near zero: |b| = EPS either sign
        candidates += [EPS, -EPS] if lo < 0 else [EPS]
    inverse = _span([1.0 / x if math.isfinite(x) else 0.0 for x in candidates])
    return _saturated(mul_interval(a, inverse))


def pow_interval(a: Interval, b: Interval, exponent: int | None) -> Interval:
    """``**``: exact for an integer constant exponent, else ``|a| ** b`` in log space."""
    if exponent is not None:
        if exponent == 0:
            return (1.0, 1.0)
        ends = [_power(a[0], exponent), _power(a[1], exponent)]
        if exponent % 2 == 0 and a[0] < 0 < a[1]:
            ends.append(0.0)
        exact = _span(ends)
        return exact if _magnitude(exact) <= EXACT_MAX else _saturated(exact)
    return (0.0, LIMIT)


def _power(x: float, n: int) -> float:
    try:
        return x**n
    except OverflowError:
        return math.copysign(_INF, x) if n % 2 else _INF


def integer_exponent(node: Node) -> int | None:
    """The exponent of ``x ** n`` / ``pow(x, n)`` when it is a small non-negative integer constant."""
    value = constant_value(node)
    if value is not None and float(value).is_integer() and 0 <= value <= MAX_EXACT_EXPONENT:
        return int(value)
    return None


def exact_power_is_safe(base: Interval, exponent: int | None) -> bool:
    """Whether ``base ** exponent`` is provably within ``±EXACT_MAX`` (no saturation needed)."""
    if exponent is None or not all(math.isfinite(x) for x in base):
        return False
    return max(abs(_power(x, exponent)) for x in base) <= EXACT_MAX


def constant_value(node: Node) -> float | None:
    """The value of a sub-tree made of numbers alone (parameters must be bound), else ``None``."""
    lo, hi = bounds(node)
    if lo == hi and not any(isinstance(n, Var) for n in _walk(node)):
        return lo
    return None


def _walk(node: Node):
    yield node
    for child in children(node):
        yield from _walk(child)


def _log(x: float) -> float:
    return math.log(max(x, EPS))


def _exp(x: float) -> float:
    return math.exp(min(x, _EXP_MAX))


def _monotone(fn: Callable[[float], float]) -> Callable[[Interval], Interval]:
    return lambda iv: (fn(iv[0]), fn(iv[1]))


def _abs(iv: Interval) -> Interval:
    lo, hi = iv
    if lo >= 0:
        return iv
    if hi <= 0:
        return (-hi, -lo)
    return (0.0, max(-lo, hi))


def _sum_of(count: float) -> Callable[[Interval], Interval]:
    return lambda iv: (_mul(count, min(iv[0], 0.0)), _mul(count, max(iv[1], 0.0)))


_UNARY: dict[str, Callable[[Interval], Interval]] = {
    "log": _monotone(_log),
    "sqrt": lambda iv: _monotone(lambda x: math.sqrt(max(x, EPS)))(_abs(iv)),
    "exp": _monotone(_exp),
    "abs": _abs,
    "softmax": lambda iv: (0.0, 1.0),
    # log_softmax(x)_c = x_c - logsumexp(x) >= min(x) - max(x) - log C
    "log_softmax": lambda iv: (iv[0] - iv[1] - math.log(MAX_CLASSES), 0.0),
    "vsum": _sum_of(MAX_VOXELS),
    "vmean": lambda iv: iv,
    "csum": _sum_of(MAX_CLASSES),
    "cmean": lambda iv: iv,
    "cmax": lambda iv: iv,
    "cmin": lambda iv: iv,
}


def _variable(name: str, vocabulary: Vocabulary | None) -> Interval:
    """A terminal's interval, or a parameter's domain; unbounded when neither is known."""
    if vocabulary is None:  # the loss language
        if name in TERMINAL_BOUNDS:
            return TERMINAL_BOUNDS[name]
        spec = PARAMETERS.get(name)
    else:
        if name in vocabulary.terminal_bounds:
            return vocabulary.terminal_bounds[name]
        if name in vocabulary.terminals:
            return _ALL
        spec = vocabulary.parameters.get(name)
    return (spec.low, spec.high) if spec else _ALL


@lru_cache(maxsize=65536)
def bounds(node: Node, vocabulary: Vocabulary | None = None) -> Interval:
    """The interval of the values of ``node`` (unbound parameters range over their domain).

    ``vocabulary`` names the terminals and parameters (``None``: the loss language).
    """
    if isinstance(node, Num):
        return (node.value, node.value)
    if isinstance(node, Var):
        return _variable(node.name, vocabulary)
    if isinstance(node, Neg):
        lo, hi = bounds(node.operand, vocabulary)
        return (-hi, -lo)
    if isinstance(node, Compare):
        return (0.0, 1.0)
    if isinstance(node, BinOp):
        return _binary(node, vocabulary)
    if isinstance(node, Call):
        return _call(node, vocabulary)
    return _ALL


def _arithmetic(node: BinOp, vocabulary: Vocabulary | None) -> Interval:
    """The exact interval of a ``+ - *`` node, before any saturation."""
    a, b = bounds(node.left, vocabulary), bounds(node.right, vocabulary)
    if node.op == "+":
        return (a[0] + b[0], a[1] + b[1])
    if node.op == "-":
        return (a[0] - b[1], a[1] - b[0])
    return mul_interval(a, b)


def _binary(node: BinOp, vocabulary: Vocabulary | None) -> Interval:
    left, right = bounds(node.left, vocabulary), bounds(node.right, vocabulary)
    if node.op == "/":
        return div_interval(left, right)
    if node.op == "**":
        return pow_interval(left, right, integer_exponent(node.right))
    out = _arithmetic(node, vocabulary)
    return out if _magnitude(out) <= EXACT_MAX else _saturated(out)


def _call(node: Call, vocabulary: Vocabulary | None) -> Interval:
    args = [bounds(arg, vocabulary) for arg in node.args]
    fn = node.fn
    if fn in _UNARY:
        return _UNARY[fn](args[0])
    if fn == "pow":
        return pow_interval(args[0], args[1], integer_exponent(node.args[1]))
    if fn == "topk_mean":
        return args[0]
    if fn in ("min", "max"):
        pick = min if fn == "min" else max
        return (pick(args[0][0], args[1][0]), pick(args[0][1], args[1][1]))
    if fn == "clamp":
        (x_lo, x_hi), low, high = args
        lo, hi = min(low[0], high[0]), max(low[1], high[1])
        return (min(max(x_lo, lo), hi), max(min(x_hi, hi), lo))
    if fn == "where":
        cond = node.args[0]
        if isinstance(cond, Compare):
            decided = _decide(cond, vocabulary)
            if decided is not None:
                return args[1] if decided else args[2]
        return (min(args[1][0], args[2][0]), max(args[1][1], args[2][1]))
    return _ALL


def _decide(cond: Compare, vocabulary: Vocabulary | None) -> bool | None:
    """The value of a comparison that the bounds of its sides decide, else ``None``."""
    (a_lo, a_hi), (b_lo, b_hi) = bounds(cond.left, vocabulary), bounds(cond.right, vocabulary)
    op = cond.op
    if op in ("<", "<="):
        (a_lo, a_hi), (b_lo, b_hi) = (b_lo, b_hi), (a_lo, a_hi)
        op = ">" if op == "<" else ">="
    if (op == ">" and a_lo > b_hi) or (op == ">=" and a_lo >= b_hi):
        return True
    if (op == ">" and a_hi <= b_lo) or (op == ">=" and a_hi < b_lo):
        return False
    return None


def decided_argument(node: Node, vocabulary: Vocabulary | None = None) -> Node | None:
    """The argument that a ``where``, ``min`` or ``max`` always takes, by the bounds, else ``None``.

    ``where(cond, a, b)`` whose comparison the bounds decide gives ``a`` or ``b``, value and
    gradient. ``min(a, b)`` is ``a`` when ``a`` lies strictly below ``b`` everywhere (``max``:
    strictly above): strictly, because on a tie torch gives each argument half the gradient.
    ``min(logp, 1)`` is ``logp``; a searched tree has many such (a GP tree is random).
    """
    if not isinstance(node, Call):
        return None
    if node.fn == "where" and isinstance(node.args[0], Compare):
        decided = _decide(node.args[0], vocabulary)
        return None if decided is None else node.args[1 if decided else 2]
    if node.fn in ("min", "max"):
        a, b = node.args
        (a_lo, a_hi), (b_lo, b_hi) = bounds(a, vocabulary), bounds(b, vocabulary)
        low, high = (a, b) if a_hi < b_lo else (b, a) if b_hi < a_lo else (None, None)
        return low if node.fn == "min" else high
    return None


def needs_saturation(node: Node, vocabulary: Vocabulary | None = None) -> bool:
    """Whether the value of a ``+ - *`` node may leave ``±EXACT_MAX`` and so must be saturated."""
    if not isinstance(node, BinOp) or node.op not in "+-*":
        return False
    return not _magnitude(_arithmetic(node, vocabulary)) <= EXACT_MAX
