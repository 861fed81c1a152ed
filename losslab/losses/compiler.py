"""Compilation of loss trees to torch programs.

A program is a straight-line list of instructions over the unique sub-trees of one or more
expressions (common sub-expressions such as ``vsum(y)`` run once), with constant sub-trees folded
at compile time. Terminals are computed lazily from the logits and labels, once per call, and
shared by every term of a compound loss.

``compile_program`` takes the vocabulary of its trees (the loss language by default); a program
of another vocabulary (a class-weight rule) runs on any object with ``get(name)`` that returns
the terminals' values, a plain mapping included.

A program runs at every training step, so nothing in it reads a value back to the host or copies
a Python value to the device (either would make a GPU wait for the host): numbers meet tensors as
Python scalars or as device fills (``tensor_like``), and the ``dist`` terminal is computed on the
device of the target (``losslab.losses.distance``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from losslab.losses import rewrites
from losslab.losses.bounds import (
    bounds,
    exact_power_is_safe,
    integer_exponent,
    needs_saturation,
)
from losslab.losses.distance import signed_distance
from losslab.losses.fusion import (
    GATHERED_READS,
    VoxelNodes,
    gather_at_labels,
    gathered_terminal,
    is_elementwise,
    label_sum_argument,
    label_sums,
    reads_log_softmax,
)
from losslab.losses.lifetimes import condition_only, last_reads
from losslab.losses.nodes import (
    BinOp,
    Call,
    Compare,
    Neg,
    Node,
    Num,
    Var,
    children,
)
from losslab.losses.ops import BINARY, COMPARISONS, LIMIT, safe_pow, tensor_like
from losslab.losses.parser import kind_of
from losslab.losses.vocabulary import LOSS_VOCABULARY, Vocabulary

__all__ = ["Program", "Terminals", "compile_program", "signed_distance"]


@dataclass
class Terminals:
    """The terminals of one evaluation, computed on first use.

    Give ``logits [B, C, *spatial]`` and integer ``labels [B, *spatial]``; or, to evaluate a loss on
    probabilities directly (tests, screening), ``probs`` and ``onehot`` (then ``z`` is unavailable).
    ``weights [C]`` are the current class weights (ones when omitted). With ``share_log`` (set
    when a program uses both), ``p`` is computed as ``exp(logp)``. ``progress`` (the fraction of
    training done) is read by learned loss terms only (``losslab.losses.learned_term``).
    """

    logits: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    onehot: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    share_log: bool = False
    progress: float | None = None
    _cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.logits is None and self.probs is None:
            raise ValueError("Terminals need logits or probs")
        if self.labels is None and self.onehot is None:
            raise ValueError("Terminals need labels or onehot")
        ref = self.logits if self.logits is not None else self.probs
        if ref.dim() < 3:
            raise ValueError(f"expected [B, C, *spatial] predictions, got shape {tuple(ref.shape)}")
        if self.labels is not None:
            expected = (ref.shape[0], *ref.shape[2:])
            if tuple(self.labels.shape) != expected:
                raise ValueError(
                    f"labels of shape {tuple(self.labels.shape)} do not match predictions of "
                    f"shape {tuple(ref.shape)}; expected {expected}"
                )
        self.num_classes = ref.shape[1]

    @property
    def device(self) -> torch.device:
        """The device of the target ``y`` (where constant outputs of a program are put)."""
        if self.onehot is not None:
            return self.onehot.device
        return (self.logits if self.logits is not None else self.probs).device

    def get(self, name: str) -> torch.Tensor | float:
        if name in self._cache:
            return self._cache[name]
        value = self._compute(name)
        self._cache[name] = value
        return value

    def _compute(self, name: str) -> torch.Tensor | float:
        if name == "nc":
            return float(self.num_classes)
        if name == "z":
            if self.logits is None:
                raise ValueError("the loss uses the logits 'z' but only probabilities were given")
            return self.logits.float()
        if name == "p":
            if self.probs is not None:
                return self.probs
            if self.share_log:  # one log-softmax serves both p and logp (and one backward)
                return self.get("logp").exp()
            return torch.softmax(self.get("z"), 1)
        if name == "logp":
            if self.logits is None:
                return torch.log(self.probs.clamp_min(1e-12))
            return torch.log_softmax(self.get("z"), 1)
        if name == "y":
            if self.onehot is not None:
                return self.onehot if self.onehot.is_floating_point() else self.onehot.float()
            ref = self.logits if self.logits is not None else self.probs
            onehot = torch.zeros(ref.shape, dtype=torch.float32, device=ref.device)
            return onehot.scatter_(1, self.labels.unsqueeze(1).long(), 1.0)
        if name == "fg":
            ref = self.get("y")
            shape = [1, self.num_classes] + [1] * (ref.dim() - 2)
            fg = torch.ones(shape, dtype=torch.float32, device=ref.device)
            fg[:, 0].fill_(0.0)
            return fg
        if name == "dist":
            return signed_distance(self.get("y"))
        if name == "w":
            ref = self.get("y")
            if self.weights is None:
                return torch.ones(self.num_classes, dtype=torch.float32, device=ref.device)
            return self.weights.to(ref.device, torch.float32)
        raise KeyError(name)


@dataclass(frozen=True)
class Program:
    """Straight-line code for several outputs over shared terminals.

    ``steps`` holds ``(kind, payload, argument slots)``; a slot is an index into the values
    computed so far, or a Python float for a folded constant. Kinds: ``terminal`` and ``op``;
    in a program compiled with ``fuse_labels``, also ``gathered`` (a terminal at the labels),
    ``gather`` (a computed voxel value at the labels) and ``labels`` (per-label sums), which
    need the integer labels (see :mod:`losslab.losses.fusion`).

    ``detached`` are the ``op`` steps whose values only reach the conditions of ``where``
    (through comparisons, which have no gradient): they run under ``torch.no_grad()``, so that
    autograd neither records them nor keeps their inputs, and the protected operators take
    their forward-only code. Values are the same. ``released[i]`` are the values that no step
    after step ``i`` reads (outputs excepted): they are dropped there, so that the allocator
    can give their memory to the next steps (a fresh tensor of a voxel's size costs more on the
    CPU than a pass over one).
    """

    steps: tuple[tuple[str, object, tuple[int | float, ...]], ...]
    outputs: tuple[int | float, ...]
    terminals: frozenset[str]
    detached: frozenset[int] = frozenset()
    released: tuple[tuple[int, ...], ...] = ()

    def run(self, terminals: Terminals | Mapping[str, torch.Tensor | float]) -> list[torch.Tensor]:
        """Evaluate every output; constant outputs come back as 0-d tensors.

        ``terminals`` is anything with ``get(name)`` returning each terminal the program reads
        (:attr:`terminals`); constant outputs go to its ``device`` (the CPU when it has none).
        """
        values: list = []
        for index, (kind, payload, slots) in enumerate(self.steps):
            args = [values[s] if isinstance(s, int) else s for s in slots]
            if kind == "terminal":
                values.append(terminals.get(payload))
            elif kind == "op":
                if index in self.detached:
                    with torch.no_grad():
                        values.append(payload(*args))
                else:
                    values.append(payload(*args))
            elif kind == "gathered":  # fused label sums (losslab.losses.fusion)
                values.append(gathered_terminal(terminals, payload))
            elif kind == "gather":
                values.append(gather_at_labels(terminals, args[0]))
            else:  # "labels"
                values.append(label_sums(terminals, args[0], mean=payload))
            if self.released:
                for slot in self.released[index]:
                    values[slot] = None
        results = []
        for slot in self.outputs:
            value = values[slot] if isinstance(slot, int) else slot
            if not isinstance(value, torch.Tensor):  # a fill on the device, no host copy
                value = torch.full((), float(value), device=getattr(terminals, "device", None))
            results.append(value)
        return results


def _saturating(operation):
    return lambda a, b: _saturate_value(operation(a, b))


def _saturate_value(value):
    return value.clamp(-LIMIT, LIMIT) if isinstance(value, torch.Tensor) else value


def _exact_power(exponent: int):
    if exponent == 0:
        return lambda a, b: tensor_like(a, a) * 0 + 1
    return lambda a, b: a**exponent


def _power(base: Node, exponent: Node, vocabulary: Vocabulary):
    """The exact power where the bounds prove it finite (``vsum(y) ** 2``), else the protected one."""
    n = integer_exponent(exponent)
    return _exact_power(n) if exact_power_is_safe(bounds(base, vocabulary), n) else safe_pow


def _operation(node: Node, vocabulary: Vocabulary):
    if isinstance(node, Neg):
        return lambda x: -x
    if isinstance(node, BinOp):
        if node.op == "**":
            return _power(node.left, node.right, vocabulary)
        operation = BINARY[node.op]
        return _saturating(operation) if needs_saturation(node, vocabulary) else operation
    if isinstance(node, Compare):
        return _comparison(node.op)
    if isinstance(node, Call):
        if node.fn == "pow":
            return _power(*node.args, vocabulary)
        return vocabulary.functions[node.fn].impl
    raise TypeError(node)


def _comparison(op: str):
    """``a op b`` where either side may be a Python number.

    A number is compared as a scalar in the dtype of the tensor it meets (float64 rule features
    are compared exactly, as the hand-written schedules compare Python floats); a number on the
    left is moved to the right by the mirrored comparison, so no tensor is made of it.
    """
    compare, mirrored = COMPARISONS[op], COMPARISONS[_MIRRORED[op]]

    def run(a, b):
        if isinstance(a, torch.Tensor):
            return _mask(compare, a, b)
        if isinstance(b, torch.Tensor):
            return _mask(mirrored, b, a)
        return compare(tensor_like(a, b), b)

    return run


_MIRRORED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _mask(compare, a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    """``compare(a, b)`` as 0 and 1 in the floating dtype of the comparison (computed in the
    dtype of the operands, as the boolean result would be): the condition of ``where`` is its
    weight (``losslab.losses.selection``), so no conversion pass is needed there."""
    dtype = torch.result_type(a, b)
    if not dtype.is_floating_point:
        return compare(a, b)
    shape = torch.broadcast_shapes(a.shape, b.shape) if isinstance(b, torch.Tensor) else a.shape
    return compare(a, b, out=torch.empty(shape, dtype=dtype, device=a.device))


def compile_program(
    trees: Sequence[Node],
    *,
    vocabulary: Vocabulary = LOSS_VOCABULARY,
    fuse_labels: bool = False,
) -> Program:
    """Compile well-typed trees of ``vocabulary`` whose parameters are already bound (see
    ``bind_parameters``).

    With ``fuse_labels`` (loss language only), ``vsum(X)`` / ``vmean(X)`` whose ``X`` vanishes
    off the label (``-y * logp``, focal's ``-(1 - p) ** gamma * y * logp``...) are evaluated at
    the labels only (:mod:`losslab.losses.fusion`); the program then needs integer labels.

    Raises:
        ValueError: a parameter left unbound, or a name the vocabulary does not know.
    """
    slots: dict[Node, int | float] = {}
    gathered_slots: dict[Node, int | float] = {}
    steps: list[tuple[str, object, tuple[int | float, ...]]] = []
    used_terminals: set[str] = set()
    voxel = VoxelNodes(vocabulary)
    fuse = fuse_labels and vocabulary is LOSS_VOCABULARY
    trees = [rewrites.simplify(tree, vocabulary) for tree in trees]  # exact, fewer passes
    logp_computed = fuse and reads_log_softmax(trees)

    def emit(kind: str, payload: object, args: tuple[int | float, ...]) -> int:
        steps.append((kind, payload, args))
        return len(steps) - 1

    def visit(node: Node, gathered: bool = False) -> int | float:
        """The slot of ``node``; ``gathered``: of its value at the labels (``[B, 1, ...]``)."""
        memo = gathered_slots if gathered else slots
        if node in memo:
            return memo[node]
        if gathered and not voxel(node):  # scalars are the same at the labels
            slot: int | float = visit(node)
        elif isinstance(node, Num):
            slot = node.value
        elif isinstance(node, Var):
            if node.name not in vocabulary.terminals:
                if node.name in vocabulary.parameters:
                    raise ValueError(f"parameter '{node.name}' is not bound")
                raise ValueError(f"unknown name '{node.name}' in a {vocabulary.name} expression")
            if gathered:
                if GATHERED_READS[node.name] is not None:
                    used_terminals.add(GATHERED_READS[node.name])
                slot = emit("gathered", node.name, ())
            else:
                used_terminals.add(node.name)
                slot = emit("terminal", node.name, ())
        elif gathered and not is_elementwise(node):  # log_softmax(...): whole, then gathered
            slot = emit("gather", None, (visit(node),))
        elif (
            isinstance(node, Call)
            and node.fn == "where"
            and _is_constant(cond := visit(node.args[0], gathered))
            and kind_of(node.args[1], vocabulary=vocabulary)
            == kind_of(node.args[2], vocabulary=vocabulary)
        ):
            # A condition of numbers and parameters alone is decided once, here (when the
            # branches differ in kind, the run-time where broadcasts the chosen one).
            slot = visit(node.args[1] if cond else node.args[2], gathered)
        elif (
            fuse
            and not gathered
            and (argument := label_sum_argument(node, logp_computed)) is not None
        ):
            slot = emit("labels", node.fn == "vmean", (visit(argument, True),))
        else:
            args = tuple(visit(child, gathered) for child in children(node))
            operation = _operation(node, vocabulary)
            if all(isinstance(a, float) for a in args):
                slot = _fold(operation, args)
            elif (same := _identity(node, args, vocabulary)) is not None:
                slot = same
            else:
                slot = emit("op", operation, args)
                if isinstance(node, Compare):
                    comparisons.add(slot)
        memo[node] = slot
        return slot

    comparisons: set[int] = set()
    outputs = tuple(visit(tree) for tree in trees)
    detached = condition_only(steps, outputs, comparisons)
    released = last_reads(steps, outputs)
    return Program(tuple(steps), outputs, frozenset(used_terminals), detached, released)


def _identity(node: Node, args: tuple[int | float, ...], vocabulary: Vocabulary) -> int | None:
    """The slot of ``x`` for ``x * 1``, ``1 * x``, ``x + 0``, ``0 + x`` and ``x - 0`` (exactly
    ``x``, value and gradient) when the operation is not saturated; else ``None``."""
    if not isinstance(node, BinOp) or node.op not in "+-*" or needs_saturation(node, vocabulary):
        return None
    left, right = args
    neutral = 1.0 if node.op == "*" else 0.0
    if right == neutral and isinstance(left, int) and not isinstance(right, int):
        return left
    if node.op != "-" and left == neutral and isinstance(right, int) and not isinstance(left, int):
        return right
    return None


def _is_constant(slot: int | float) -> bool:
    return isinstance(slot, float)


def _fold(operation, args: tuple[float, ...]) -> float:
    """Evaluate a constant sub-tree once, with the same protected code as at run time."""
    value = operation(*(torch.tensor(a, dtype=torch.float32) for a in args))
    return float(value)
