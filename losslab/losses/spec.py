"""``LossSpec``: one expression of the loss language with its parameters bound.

A spec prints to a canonical string that parses back to an equal spec, so the string is both
the human-readable name of a loss and its storage format. Every parameter the expression uses is
printed with its value, so the string does not depend on defaults that may change::

    >>> spec = parse_loss("vmean(-(1 - p) ** gamma * y * logp)")
    >>> str(spec)
    'vmean(-(1 - p) ** gamma * y * logp); gamma=2'
    >>> parse_loss(str(spec)) == spec
    True
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch

from losslab.losses.compiler import Program, Terminals, compile_program
from losslab.losses.nodes import (
    Node,
    Var,
    bind_parameters,
    format_number,
    has_gradient_path,
    iter_nodes,
    to_source,
)
from losslab.losses.ops import PARAMETERS, Kind
from losslab.losses.parser import (
    DEFAULT_MAX_NODES,
    LossSyntaxError,
    check_tree,
    parse_expression,
)

if TYPE_CHECKING:
    from losslab.losses.learned import LossNetwork
    from losslab.losses.learned_term import LearnedTerm

__all__ = [
    "ABSENT_CLASSES",
    "CompiledLoss",
    "CompoundLoss",
    "LossSpec",
    "compile_terms",
    "has_gradient_path",
    "parse_loss",
    "present_classes",
    "reduce",
]


def _used_parameters(tree: Node) -> list[str]:
    return sorted({n.name for n in iter_nodes(tree) if isinstance(n, Var) and n.name in PARAMETERS})


def _check_value(name: str, value: float, text: str) -> float:
    spec = PARAMETERS[name]
    value = float(value)
    if not spec.low <= value <= spec.high:
        raise LossSyntaxError(
            f"parameter {name}={format_number(value)} is out of its range "
            f"[{format_number(spec.low)}, {format_number(spec.high)}] ({spec.doc})",
            text,
        )
    return value


@dataclass(frozen=True)
class LossSpec:
    """A loss expression and the values of the parameters it uses.

    Build one with :func:`parse_loss` (from text) or :meth:`from_tree` (from a tree built in
    code). Equality and hashing are structural.
    """

    tree: Node
    params: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_tree(cls, tree: Node, max_nodes: int = DEFAULT_MAX_NODES, **params: float) -> LossSpec:
        """Check a tree built in code and bind its parameters (defaults for the others)."""
        check_tree(tree, max_nodes=max_nodes)
        return cls._bind(tree, params, to_source(tree))

    @classmethod
    def _bind(cls, tree: Node, given: dict[str, float], text: str) -> LossSpec:
        used = _used_parameters(tree)
        unused = sorted(set(given) - set(used))
        if unused:
            raise LossSyntaxError(
                f"parameter(s) {', '.join(unused)} are not used by the expression"
                + (f" (it uses: {', '.join(used)})" if used else " (it uses none)"),
                text,
            )
        values = {
            name: _check_value(name, given.get(name, PARAMETERS[name].default), text)
            for name in used
        }
        return cls(tree, tuple(sorted(values.items())))

    @property
    def expression(self) -> str:
        """The canonical text of the expression, without parameter bindings."""
        return to_source(self.tree)

    @property
    def parameters(self) -> dict[str, float]:
        return dict(self.params)

    @cached_property
    def kind(self) -> Kind:
        """``Kind.CLASS`` (per-class vector ``[C]``) or ``Kind.SCALAR`` (class-coupled)."""
        return check_tree(self.tree, max_nodes=10**9)

    @property
    def terms(self) -> tuple[LossSpec, ...]:
        return (self,)

    def __str__(self) -> str:
        bindings = "; ".join(f"{k}={format_number(v)}" for k, v in self.params)
        return f"{self.expression}; {bindings}" if bindings else self.expression

    def with_params(self, **params: float) -> LossSpec:
        """A copy with some parameters changed (each must be used by the expression)."""
        return LossSpec._bind(self.tree, {**self.parameters, **params}, str(self))

    def to_json(self) -> str:
        return json.dumps({"loss": str(self)})

    @classmethod
    def from_json(cls, text: str) -> LossSpec:
        return parse_loss(json.loads(text)["loss"])

    def compile(self) -> CompiledLoss:
        """Torch code of this loss: called with logits and labels it returns the loss value."""
        return CompiledLoss((self,), single=True)

    @cached_property
    def trainable(self) -> bool:
        """Whether the loss has a gradient path to the predictions (``p``, ``logp`` or ``z``).

        A loss of the targets and constants alone (``vsum(y)``, ``1``) cannot train a network;
        the conditions of ``where`` carry no gradient and do not count.
        """
        return has_gradient_path(self.tree)

    def require_trainable(self) -> LossSpec:
        """This spec, or a :class:`LossSyntaxError` saying why it cannot train a network."""
        if not self.trainable:
            raise LossSyntaxError(
                "the loss has no gradient path to the network's predictions: it uses none of "
                "p, logp or z outside the condition of a where, so training cannot change it",
                str(self),
            )
        return self


def parse_loss(text: str, *, max_nodes: int = DEFAULT_MAX_NODES, **params: float) -> LossSpec:
    """Parse a loss text (``expression[; name=value ...]``) into a :class:`LossSpec`.

    Keyword ``params`` override the bindings in the text; parameters bound nowhere take their
    defaults from :data:`losslab.losses.ops.PARAMETERS`.

    Raises:
        LossSyntaxError: quoting the text and pointing at the part at fault.
    """
    tree, _, bound = parse_expression(text, max_nodes=max_nodes)
    return LossSpec._bind(tree, {**bound, **params}, text.strip())


@dataclass(frozen=True)
class CompoundLoss:
    """Several loss terms with static term weights, ``L = sum_k alpha_k * R_k``."""

    name: str
    terms: tuple[LossSpec, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.terms) != len(self.weights) or not self.terms:
            raise ValueError(f"{self.name}: need one weight per term and at least one term")

    def __str__(self) -> str:
        return " + ".join(f"{format_number(a)} * [{t}]" for a, t in zip(self.weights, self.terms))

    def compile(self) -> CompiledLoss:
        return CompiledLoss(self.terms)


ABSENT_CLASSES = ("keep", "ignore")


def present_classes(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[C]`` bool: which classes occur in the integer ``labels`` (no host sync)."""
    present = torch.zeros(num_classes, dtype=torch.bool, device=labels.device)
    return present.scatter_(0, labels.reshape(-1).long(), True)


def reduce(
    value: torch.Tensor,
    weights: torch.Tensor | None = None,
    present: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce a term's value to a scalar: ``mean_c(w_c * L_c)`` for ``[C]``, as is for a scalar.

    A class absent from the batch keeps its place in ``mean_c`` by default, as in MONAI: its
    region loss (Dice, IoU, Tversky, F-beta) is then about 1 with a gradient near zero (its
    smoothing terms alone), so its false positives are hardly penalised and it only dilutes the
    mean. With ``present`` (``[C]`` bool, see :func:`present_classes`) the mean is taken over
    the present classes only: ``sum_{c present} w_c L_c / |present|``. Class-coupled (scalar)
    terms are returned as they are.
    """
    if value.dim() == 0:
        return value
    weighted = value if weights is None else weights.to(value) * value
    if present is None:
        return weighted.mean()
    mask = present.to(value)
    return (weighted * mask).sum() / mask.sum().clamp_min(1.0)


class CompiledLoss:
    """Torch code of one or more loss terms sharing terminals and common sub-expressions.

    Calling it with ``logits [B, C, *spatial]`` and integer ``labels [B, *spatial]`` returns the
    value of each term: ``[C]`` for a per-class term, a 0-d tensor for a class-coupled one. A
    single spec's compiled loss (``spec.compile()``) returns that value; a compound loss's
    (``compound.compile()``, :func:`compile_terms`) returns a list with one value per term.
    Values are float32 whatever the dtype of the logits (autocast-safe).

    A :class:`~losslab.losses.learned_term.LearnedTerm` among the terms is evaluated by its
    loss network, loaded here (``FileNotFoundError`` / ``ValueError`` naming the file when it is
    missing or corrupt); ``progress`` (the fraction of training done) is what it reads as its
    ``progress`` feature. Expression terms ignore it.
    """

    def __init__(self, terms: Sequence[LossSpec | LearnedTerm], *, single: bool = False):
        self.terms = tuple(terms)
        if single and len(self.terms) != 1:
            raise ValueError(f"a single loss has one term, got {len(self.terms)}")
        self.single = single
        # a term that is not an expression is a learned term (``LearnedTerm``): its network
        self.networks = {
            k: t.load() for k, t in enumerate(self.terms) if not isinstance(t, LossSpec)
        }
        self._expressions = [t for k, t in enumerate(self.terms) if k not in self.networks]
        self.program: Program = _compile_with_own_params(self._expressions, fuse_labels=True)
        self.uses = self.program.terminals
        self._unfused: Program | None = None

    @property
    def unfused_program(self) -> Program:
        """The program without label sums (:mod:`losslab.losses.fusion`): for predictions
        given as probabilities, or a target given as a one-hot tensor (which need not be
        exactly one-hot), where the labels do not say everything about ``y``."""
        if self._unfused is None:
            self._unfused = _compile_with_own_params(self._expressions)
        return self._unfused

    def evaluate(self, terminals: Terminals) -> list[torch.Tensor]:
        fused = terminals.logits is not None and terminals.onehot is None
        program = self.program if fused else self.unfused_program
        terminals.share_log = {"p", "logp"} <= program.terminals
        with torch.autocast(device_type=_device_type(terminals), enabled=False):
            values = program.run(terminals)
        if self.networks:
            values = learned_values(self.networks, values, terminals)
        return values

    def __call__(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        weights: torch.Tensor | None = None,
        *,
        progress: float | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        terminals = Terminals(logits=logits, labels=labels, weights=weights, progress=progress)
        values = self.evaluate(terminals)
        return values[0] if self.single else values

    @staticmethod
    def reduce_terms(
        values: Sequence[torch.Tensor],
        class_weights: torch.Tensor | None = None,
        *,
        labels: torch.Tensor | None = None,
        absent_classes: str = "keep",
        present: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[K]`` float32: each term's value reduced, ``R_k = mean_c(w_c * L_kc)`` for a
        per-class term, a class-coupled term's scalar as it is (see :func:`reduce`).

        This is the one place where term values are reduced: :meth:`total` weighs the result by
        ``alpha_k``, and the trainer hands it (detached) to the adaptive term schedules before
        weighing it. ``values`` are what calling a compiled loss of several terms returns.
        ``absent_classes="ignore"`` takes ``mean_c`` over the classes present in ``labels``
        only (:func:`present_classes`); ``present`` (``[C]`` bool) gives that mask directly.
        Nothing is read back to the host. A static method, so that it serves any callable that
        returns term values (the trainer's loss may be swapped for one).

        Raises:
            ValueError: ``absent_classes`` is not one of :data:`ABSENT_CLASSES`, or ``"ignore"``
                without ``labels`` or ``present``.
        """
        if absent_classes not in ABSENT_CLASSES:
            raise ValueError(
                f"absent_classes must be one of {', '.join(ABSENT_CLASSES)}, got {absent_classes!r}"
            )
        if present is None and absent_classes == "ignore":
            if labels is None:
                raise ValueError("absent_classes='ignore' needs the labels (or the mask present)")
            per_class = [v for v in values if v.dim() > 0]
            if per_class:
                present = present_classes(labels, per_class[0].shape[0])
        return torch.stack([reduce(v, class_weights, present) for v in values])

    def total(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        class_weights: torch.Tensor | None = None,
        term_weights: Sequence[float] | torch.Tensor | None = None,
        *,
        absent_classes: str = "keep",
    ) -> torch.Tensor:
        """``sum_k alpha_k * mean_c(w_c * L_kc)``, the objective of docs/architecture.md.

        The terms are reduced by :meth:`reduce_terms`; ``alpha_k = 1`` when ``term_weights``
        is not given. ``absent_classes="ignore"`` takes ``mean_c`` over the classes present in
        ``labels`` only (see :func:`reduce`).
        """
        values = self.evaluate(Terminals(logits=logits, labels=labels, weights=class_weights))
        reduced = self.reduce_terms(
            values, class_weights, labels=labels, absent_classes=absent_classes
        )
        if term_weights is None:
            return reduced.sum()
        alphas = torch.as_tensor(term_weights, dtype=reduced.dtype).to(reduced.device)
        if alphas.shape != reduced.shape:
            raise ValueError(
                f"term_weights must have {reduced.numel()} entries, got {alphas.numel()}"
            )
        return (alphas * reduced).sum()


def _device_type(terminals: Terminals) -> str:
    ref = terminals.logits if terminals.logits is not None else terminals.probs
    return ref.device.type


def _compile_with_own_params(terms: Sequence[LossSpec], *, fuse_labels: bool = False) -> Program:
    """One program for all terms, each term's parameters folded in as constants."""
    trees = [bind_parameters(term.tree, term.parameters) for term in terms]
    return compile_program(trees, fuse_labels=fuse_labels)


def compile_terms(terms: Sequence[LossSpec | LearnedTerm]) -> CompiledLoss:
    """Compile several terms (expressions and learned terms) into one :class:`CompiledLoss`."""
    return CompiledLoss(terms)


def learned_values(
    networks: dict[int, LossNetwork],
    expression_values: Sequence[torch.Tensor],
    terminals: Terminals,
) -> list[torch.Tensor]:
    """Every term's value in term order: the learned terms' from their networks (float32
    ``[C]``, reading ``terminals.progress``), the others taken in order from
    ``expression_values``.

    Raises:
        ValueError: terminals without logits or labels (a learned term needs both).
    """
    logits, labels = terminals.logits, terminals.labels
    if logits is None or labels is None:
        raise ValueError("a learned loss term (lossnet:...) needs logits and labels")
    others = iter(expression_values)
    values = []
    for k in range(len(networks) + len(expression_values)):
        net = networks.get(k)
        if net is None:
            values.append(next(others))
            continue
        if net.layers[0].weight.device != logits.device:
            net.to(logits.device)  # in place, once: it stays there for the next steps
        with torch.autocast(device_type=logits.device.type, enabled=False):
            value = net.loss(logits, labels, terminals.weights, terminals.progress)
        values.append(value.float())
    return values
