"""The vocabulary of the loss language: kinds, terminals, parameters, functions and their torch code.

Every value has one of three kinds:

- ``VOXEL``: a tensor ``[B, C, *spatial]`` (or one that broadcasts to it, like ``fg``);
- ``CLASS``: a per-class vector ``[C]``;
- ``SCALAR``: a single number.

Arithmetic broadcasts a scalar to either other kind, but never mixes a voxel tensor with a class
vector: voxel tensors are reduced first (``vsum``, ``vmean``, ``topk_mean``), which keeps every
loss a per-class vector before the class weights apply.

Protected functions keep values and gradients finite on every input: the argument of ``log`` and
``sqrt`` is floored, ``exp`` is capped, a denominator is kept away from zero and powers are
computed in log space when they could overflow. Outputs of the operations that can grow without
bound are saturated at ``±LIMIT`` so that a searched expression cannot overflow float32.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from losslab.losses.protected import divide, power
from losslab.losses.selection import maximum, minimum, select

__all__ = [
    "EPS",
    "FUNCTIONS",
    "LIMIT",
    "PARAMETERS",
    "TERMINALS",
    "Function",
    "Kind",
    "KindError",
    "Parameter",
    "combine",
    "tensor_like",
]

EPS = 1e-6  # floor of |denominator|, of the argument of log and of the base of a real power
LIMIT = 1e12  # saturation of div, exp and pow outputs; float32 keeps LIMIT**3 finite
_EXP_MAX = math.log(LIMIT)


class Kind(enum.IntEnum):
    """What a value of the language is; the order is that of broadcasting."""

    SCALAR = 0
    CLASS = 1
    VOXEL = 2

    @property
    def description(self) -> str:
        return {0: "a scalar", 1: "a class vector [C]", 2: "a voxel tensor [B, C, *spatial]"}[
            self.value
        ]


class KindError(ValueError):
    """A kind mismatch; the parser adds where it happened."""


def combine(*kinds: Kind) -> Kind:
    """Kind of an elementwise result; a voxel tensor and a class vector never mix."""
    if Kind.VOXEL in kinds and Kind.CLASS in kinds:
        raise KindError(
            "cannot combine a voxel tensor with a class vector; reduce the voxel tensor first "
            "with vsum, vmean or topk_mean"
        )
    return max(kinds, default=Kind.SCALAR)


TERMINALS: dict[str, tuple[Kind, str]] = {
    "p": (Kind.VOXEL, "softmax probabilities"),
    "logp": (Kind.VOXEL, "log-softmax of the logits"),
    "z": (Kind.VOXEL, "raw logits"),
    "y": (Kind.VOXEL, "one-hot target"),
    "fg": (Kind.VOXEL, "1 for foreground classes, 0 for the background class, [1, C, 1, ...]"),
    "dist": (Kind.VOXEL, "signed distance to the target boundary per class (Kervadec)"),
    "w": (Kind.CLASS, "current class weights"),
    "nc": (Kind.SCALAR, "number of classes C"),
}


@dataclass(frozen=True)
class Parameter:
    """A named numeric parameter: its default and the closed range of values it may take."""

    default: float
    low: float
    high: float
    doc: str


PARAMETERS: dict[str, Parameter] = {
    "alpha": Parameter(0.5, 0.0, 1e3, "weight of false positives (Tversky) or a mixing weight"),
    "beta": Parameter(0.5, 0.0, 1e3, "weight of false negatives (Tversky) or F-beta's beta"),
    "gamma": Parameter(2.0, 0.0, 10.0, "focusing exponent of focal losses"),
    "eps": Parameter(1e-5, 0.0, 1.0, "smoothing added to numerator and denominator"),
    "k": Parameter(0.1, 1e-6, 1.0, "fraction of voxels kept by topk_mean"),
    "lam": Parameter(0.05, 0.0, 1.0, "sensitivity weight of the SS loss"),
    "margin": Parameter(1.0, 0.0, 100.0, "logit margin of large-margin losses"),
    "delta": Parameter(0.5, 0.0, 1.0, "a second mixing weight"),
}


def _saturate(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(-LIMIT, LIMIT)


def tensor_like(value: float | torch.Tensor, ref: float | torch.Tensor) -> torch.Tensor:
    """``value`` as a 0-d tensor of the dtype and device of ``ref`` (a tensor stays as it is).

    Made by a fill on the device, not from Python data: ``torch.tensor(value, device=...)``
    copies from the host, which makes a GPU wait for the host at every step of a loss.
    """
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(ref, torch.Tensor):
        return torch.full((), value, dtype=ref.dtype, device=ref.device)
    return torch.full((), value, dtype=torch.float32)


def safe_div(a, b):
    """``a / b`` with ``|b|`` floored at ``EPS`` (keeping its sign, 0 counting as positive)."""
    if not isinstance(b, torch.Tensor):
        b = b if abs(b) >= EPS else EPS
        return _saturate(tensor_like(a, b) / b) if isinstance(a, torch.Tensor) else a / b
    return divide(tensor_like(a, b), b, EPS, LIMIT)


def safe_pow(a, b):
    """``a ** b``: exact for small non-negative integer exponents, else ``|a| ** b`` in log space."""
    if not isinstance(b, torch.Tensor) and float(b).is_integer() and 0 <= b <= 3:
        return _saturate(tensor_like(a, b) ** int(b)) if b != 0 else tensor_like(a, b) * 0 + 1
    return power(tensor_like(a, b), b, EPS, _EXP_MAX)


def safe_log(x):
    return torch.log(tensor_like(x, x).clamp_min(EPS))


def safe_sqrt(x):
    return torch.sqrt(tensor_like(x, x).abs().clamp_min(EPS))


def safe_exp(x):
    return torch.exp(tensor_like(x, x).clamp(max=_EXP_MAX))


def _reduce_dims(x: torch.Tensor) -> list[int]:
    return [0, *range(2, x.dim())]


def vsum(x: torch.Tensor) -> torch.Tensor:
    return x.sum(_reduce_dims(x))


def vmean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(_reduce_dims(x))


def topk_mean(x: torch.Tensor, k: float) -> torch.Tensor:
    """Per class, the mean of the largest ``ceil(k * B * N)`` voxel values (Wu et al., TopK loss).

    At least one voxel and at most all of them are kept, whatever ``k`` (a ``k`` computed from
    parameters may leave ``(0, 1]``; a constant outside it is refused by the parser).
    """
    flat = x.movedim(1, 0).reshape(x.shape[1], -1)
    fraction = min(max(float(k), 0.0), 1.0) if math.isfinite(k) else 1.0
    count = min(flat.shape[1], max(1, math.ceil(fraction * flat.shape[1])))
    return flat.topk(count, dim=1, sorted=False).values.mean(1)


def _where(cond, a, b):
    ref = a if isinstance(a, torch.Tensor) else b
    if not isinstance(cond, torch.Tensor):  # a folded constant condition
        chosen = a if cond else b
        if not isinstance(ref, torch.Tensor):
            return chosen
        # the branches differ in kind: the chosen one broadcast to both (no host copy)
        shape = torch.broadcast_shapes(*(x.shape for x in (a, b) if isinstance(x, torch.Tensor)))
        if isinstance(chosen, torch.Tensor):
            return chosen.expand(shape)
        return torch.full(shape, float(chosen), dtype=ref.dtype, device=ref.device)
    if isinstance(ref, torch.Tensor):  # a number branch is a scalar of the tensor's dtype
        return select(cond, tensor_like(a, ref), tensor_like(b, ref))
    return torch.where(cond != 0, float(a), float(b)).to(torch.float32)  # two numbers: float32


# ``min`` and ``max`` keep torch.minimum / torch.maximum against a number too (made on the device
# by ``tensor_like``): clamp would give a tie the whole gradient where these split it in two.
# ``select``, ``minimum`` and ``maximum`` give torch's values and gradients in fewer passes.
def _min(a, b):
    return minimum(tensor_like(a, b), tensor_like(b, a))


def _max(a, b):
    return maximum(tensor_like(a, b), tensor_like(b, a))


def _clamp(x, low, high):
    return tensor_like(x, x).clamp(min(low, high), max(low, high))


@dataclass(frozen=True)
class Function:
    """A callable of the language.

    ``constant_args`` are positions that must be numbers or parameters (known when compiling);
    ``result`` maps the kinds of the other arguments to the result kind, raising ``KindError``.
    """

    arity: int
    impl: Callable
    result: Callable[..., Kind]
    doc: str
    constant_args: tuple[int, ...] = ()


def _elementwise(*kinds: Kind) -> Kind:
    return combine(*kinds)


def _needs(fn: str, expected: Kind, out: Kind) -> Callable[..., Kind]:
    """Kind rule of a function whose first argument must be of kind ``expected``."""

    def rule(arg: Kind, *_: Kind) -> Kind:
        if arg is not expected:
            raise KindError(f"{fn} expects {expected.description}, got {arg.description}")
        return out

    return rule


FUNCTIONS: dict[str, Function] = {
    "log": Function(1, safe_log, _elementwise, "natural log, argument floored at EPS"),
    "sqrt": Function(1, safe_sqrt, _elementwise, "square root of |x|, floored at EPS"),
    "exp": Function(1, safe_exp, _elementwise, "exponential, capped at LIMIT"),
    "abs": Function(1, lambda x: tensor_like(x, x).abs(), _elementwise, "absolute value"),
    "pow": Function(2, safe_pow, _elementwise, "protected power, same as **"),
    "min": Function(2, _min, _elementwise, "elementwise minimum"),
    "max": Function(2, _max, _elementwise, "elementwise maximum"),
    "clamp": Function(3, _clamp, _elementwise, "clamp(x, low, high)", constant_args=(1, 2)),
    "where": Function(3, _where, _elementwise, "where(a < b, then, else)"),
    "softmax": Function(
        1, lambda x: torch.softmax(x, 1), _needs("softmax", Kind.VOXEL, Kind.VOXEL), "over classes"
    ),
    "log_softmax": Function(
        1,
        lambda x: torch.log_softmax(x, 1),
        _needs("log_softmax", Kind.VOXEL, Kind.VOXEL),
        "log-softmax over classes",
    ),
    "vsum": Function(1, vsum, _needs("vsum", Kind.VOXEL, Kind.CLASS), "sum over batch and voxels"),
    "vmean": Function(1, vmean, _needs("vmean", Kind.VOXEL, Kind.CLASS), "mean over batch, voxels"),
    "topk_mean": Function(
        2,
        topk_mean,
        _needs("topk_mean", Kind.VOXEL, Kind.CLASS),
        "topk_mean(x, k): mean of the top k fraction of voxels per class",
        constant_args=(1,),
    ),
    "csum": Function(
        1, lambda x: x.sum(), _needs("csum", Kind.CLASS, Kind.SCALAR), "sum over classes"
    ),
    "cmean": Function(
        1, lambda x: x.mean(), _needs("cmean", Kind.CLASS, Kind.SCALAR), "class mean"
    ),
    "cmax": Function(
        1, lambda x: x.max(), _needs("cmax", Kind.CLASS, Kind.SCALAR), "class maximum"
    ),
    "cmin": Function(
        1, lambda x: x.min(), _needs("cmin", Kind.CLASS, Kind.SCALAR), "class minimum"
    ),
}

COMPARISONS: dict[str, Callable] = {
    "<": torch.lt,
    "<=": torch.le,
    ">": torch.gt,
    ">=": torch.ge,
}

BINARY: dict[str, Callable] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": safe_div,
    "**": safe_pow,
}
