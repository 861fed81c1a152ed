"""Learned class schedules: the new class weights are an expression over per-class features.

A rule is written in the loss language (same parser, printer, kind checker and compiler) over
the vocabulary :data:`RULE_VOCABULARY`: per-class features of the training state measured at the
end of each epoch (see :func:`rule_features`), numeric constants, the elementwise functions and
the class reductions ``csum``, ``cmean``, ``cmax``, ``cmin`` (so that a class can be compared
with the others, ``s >= cmax(s)``). A rule's value is a class vector or a scalar (broadcast to
every class). :class:`RuleSchedule` (registry name ``rule``) sets ``w = clip(value, 0, cap)``.

The seed rules write the freezing schedules of Willoughby and Voiculescu (2024) in this language:

- :data:`TCF_RULE` is TCF exactly (same weights on every score sequence).
- :data:`PCF_RULE` freezes (weight 0.1) the best not-yet-frozen scheduled class when
  ``since > 2`` (its best score was set more than ``delta = 2`` epochs ago, so no score of the
  window ``[j - 2, j]`` beat it) and ``best - s > 0.005`` (its current score is more than
  ``epsilon`` below that best); a frozen class keeps its weight.
- :data:`CBS_RULE` has the same trigger and freezing and, on a trigger, gives every other
  unfrozen scheduled class ``min(1 / (s + 0.1), 2)`` (``zeta = 0.1``, ``cap = 2``); weights are
  kept between triggers.

Where they differ from :class:`~losslab.schedules.class_freezing.PlateauClassFreezing` and
:class:`~losslab.schedules.class_freezing.ClassBoostStrategy` (the features hold no history
beyond the best score and the previous one):

- No last-trigger epoch ``u``: PCF compares the best of the window with the best since ``u``
  and restarts both at a trigger; the rules compare with the best of the whole run. So two
  triggers may come fewer than ``delta + 1`` epochs apart (a class that plateaued while another
  was the best is frozen as soon as it becomes the best), and a class whose best predates ``u``
  may trigger where PCF waits.
- Epsilon applies to the current score only: PCF needs every score of the window more than
  ``epsilon`` below the best; the rules need none of them above it and the current one more
  than ``epsilon`` below. A tie with the best counts as no improvement in both.
- Ties: every class sharing the best score is frozen at once; PCF freezes the lowest index.
- Frozen means ``frozen`` (weight below 1) in :data:`PCF_RULE`, and weight below 0.5 in
  :data:`CBS_RULE`, whose boost can fall below 1 (never below ``1 / (1 + zeta)``).
- A class not scored this epoch counts as score 0 in the class maximum (PCF leaves it out);
  this matters only when every other candidate scores 0. The masking by multiplication assumes
  scores are non-negative (Dice).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from losslab.losses.bounds import MAX_CLASSES
from losslab.losses.compiler import Program, compile_program
from losslab.losses.nodes import Node, to_source
from losslab.losses.ops import FUNCTIONS, Kind
from losslab.losses.parser import DEFAULT_MAX_NODES, LossSyntaxError, check_tree, parse_expression
from losslab.losses.vocabulary import Vocabulary
from losslab.schedules.class_schedules import ClassSchedule, _nan_to_none, _none_to_nan
from losslab.schedules.context import EpochContext

__all__ = [
    "CBS_RULE",
    "PCF_RULE",
    "RULE_VOCABULARY",
    "SEED_RULES",
    "TCF_RULE",
    "Rule",
    "RuleSchedule",
    "parse_rule",
    "rule_features",
]

_FUNCTION_NAMES = (
    *("log", "sqrt", "exp", "abs", "pow", "min", "max", "clamp", "where"),
    *("csum", "cmean", "cmax", "cmin"),
)

RULE_VOCABULARY = Vocabulary(
    name="rule",
    terminals={
        "s": (Kind.CLASS, "this epoch's validation score of the class (0 when not scored)"),
        "best": (Kind.CLASS, "best score so far (0 while never scored)"),
        "since": (Kind.CLASS, "epochs since the best score was set"),
        "delta": (
            Kind.CLASS,
            "change of the score since the previous epoch (0 at the first scored epoch, "
            "after an unscored one, or when not scored)",
        ),
        "freq": (Kind.CLASS, "class voxel frequency of the training split"),
        "w": (Kind.CLASS, "current class weights"),
        "frozen": (Kind.CLASS, "1 where the class is down-weighted (weight < 1), else 0"),
        "fg": (
            Kind.CLASS,
            "1 for the classes the schedule updates (the foreground; every class with "
            "include_background), else 0",
        ),
        "t": (Kind.SCALAR, "training progress epoch / total_epochs, in [0, 1]"),
        "nc": (Kind.SCALAR, "number of classes C"),
    },
    parameters={},
    functions={name: FUNCTIONS[name] for name in _FUNCTION_NAMES},
    results=frozenset({Kind.CLASS, Kind.SCALAR}),
    terminal_bounds={
        "since": (0.0, math.inf),
        "freq": (0.0, 1.0),
        "frozen": (0.0, 1.0),
        "fg": (0.0, 1.0),
        "t": (0.0, 1.0),
        "nc": (1.0, MAX_CLASSES),
    },
)
"""Class-weight rules: per-class features of the training state, no parameters, no voxels."""


@lru_cache(maxsize=4096)
def _compiled(tree: Node) -> Program:
    return compile_program([tree], vocabulary=RULE_VOCABULARY)


class _Features:
    """A features mapping as the terminals of a program (constant outputs go to its device)."""

    def __init__(self, features: Mapping[str, Tensor | float]):
        self.features = features
        tensors = [v for v in features.values() if isinstance(v, Tensor)]
        self.device = tensors[0].device if tensors else None

    def get(self, name: str) -> Tensor | float:
        return self.features[name]


@dataclass(frozen=True)
class Rule:
    """A kind-checked rule expression. Build one with :func:`parse_rule` or :meth:`from_tree`;
    ``str(rule)`` is its canonical text. Equality and hashing are structural."""

    tree: Node

    @classmethod
    def from_tree(cls, tree: Node, *, max_nodes: int = DEFAULT_MAX_NODES) -> Rule:
        """Check a tree built in code (a genetic search's offspring).

        Raises:
            LossSyntaxError: an unknown name or function (a voxel function), a kind error, a
                comparison outside ``where``'s condition, more than ``max_nodes`` nodes.
        """
        check_tree(tree, max_nodes=max_nodes, vocabulary=RULE_VOCABULARY)
        return cls(tree)

    @property
    def kind(self) -> Kind:
        """``Kind.CLASS`` (one value per class) or ``Kind.SCALAR`` (the same for every class)."""
        return check_tree(self.tree, max_nodes=10**9, vocabulary=RULE_VOCABULARY)

    def __str__(self) -> str:
        return to_source(self.tree)

    def evaluate(
        self, features: Mapping[str, Tensor | float], *, num_classes: int | None = None
    ) -> Tensor:
        """The rule's value per class, float32 ``[C]``; a scalar value is broadcast.

        Args:
            features: a value for every terminal the rule reads (see :func:`rule_features`):
                ``[C]`` tensors or numbers.
            num_classes: ``C``; by default the length of the first ``[C]`` tensor of
                ``features``.

        Raises:
            ValueError: a feature the rule reads is missing, or ``C`` cannot be told.
        """
        program = _compiled(self.tree)
        missing = sorted(program.terminals - set(features))
        if missing:
            raise ValueError(f"rule {self}: no value for the feature(s) {', '.join(missing)}")
        if num_classes is None:
            sizes = [len(v) for v in features.values() if isinstance(v, Tensor) and v.dim() == 1]
            if not sizes:
                raise ValueError(f"rule {self}: give num_classes (no [C] feature to tell it)")
            num_classes = sizes[0]
        (value,) = program.run(_Features(features))
        value = value.to(torch.float32)
        if value.dim() == 0:
            return value.expand(num_classes).clone()
        if tuple(value.shape) != (num_classes,):
            raise ValueError(
                f"rule {self}: expected {num_classes} values, got shape {tuple(value.shape)}"
            )
        return value


def parse_rule(text: str, *, max_nodes: int = DEFAULT_MAX_NODES) -> Rule:
    """Parse and kind-check the text of a rule.

    Raises:
        LossSyntaxError: quoting the text (an unknown name, a voxel function such as ``vsum``,
            a kind error, a syntax error...).
    """
    tree, _, _ = parse_expression(text, max_nodes=max_nodes, vocabulary=RULE_VOCABULARY)
    return Rule(tree)


def rule_features(
    context: EpochContext,
    weights: Tensor,
    previous_scores: Sequence[float] | None,
    *,
    include_background: bool = False,
) -> dict[str, Tensor | float]:
    """The values of the rule terminals at the end of ``context.epoch``.

    Class features are float64 ``[C]`` tensors on the CPU, so that a rule compares scores as
    exactly as the hand-written schedules do (on Python floats); ``t`` and ``nc`` are numbers.
    A ``NaN`` score or best score becomes 0 (the schedule keeps the weight of an unscored class
    anyway).

    Args:
        context: the context of the epoch that just ended.
        weights: the current weights ``[C]``.
        previous_scores: the scores of the previous epoch (``NaN`` = not scored), ``None`` at
            the first epoch.
        include_background: whether class 0 is scheduled (``fg`` is 1 there too).
    """
    num_classes = context.num_classes

    def vector(values: Sequence[float]) -> Tensor:
        return torch.tensor(list(values), dtype=torch.float64)

    scores = vector(context.scores)
    previous = vector(previous_scores) if previous_scores is not None else scores * math.nan
    w = weights.detach().to("cpu", torch.float64).reshape(-1)
    for what, value in (("weights", w), ("previous_scores", previous)):
        if len(value) != num_classes:
            raise ValueError(f"{what} must have {num_classes} entries, got {len(value)}")
    known = ~torch.isnan(scores) & ~torch.isnan(previous)
    fg = torch.ones(num_classes, dtype=torch.float64)
    if not include_background:
        fg[0] = 0.0
    return {
        "s": torch.nan_to_num(scores, nan=0.0),
        "best": torch.nan_to_num(vector(context.best_scores), nan=0.0),
        "since": vector(context.epochs_since_best),
        "delta": torch.where(known, scores - previous, torch.zeros_like(scores)),
        "freq": vector(context.frequencies),
        "w": w,
        "frozen": (w < 1).to(torch.float64),
        "fg": fg,
        "t": float(context.progress),
        "nc": float(num_classes),
    }


class RuleSchedule(ClassSchedule):
    """A learned class schedule: at the end of each epoch ``w = clip(rule(features), 0, cap)``.

    A class not scored this epoch, or whose rule value is not finite, keeps its previous
    weight; the background (class 0) stays 1 unless ``include_background``. The previous
    epoch's scores (for ``delta``) are part of the state.

    Args:
        num_classes: ``C``, background included.
        expression: the rule's text (see :data:`RULE_VOCABULARY`); kept in canonical form.
        cap: the largest weight (finite, > 0).
        include_background: whether class 0 is scheduled.

    Raises:
        ValueError: a bad expression (the message quotes it) or ``cap``.

    Example:
        >>> schedule = RuleSchedule(3, expression=TCF_RULE)
        >>> start = EpochContext.start([0.8, 0.15, 0.05], total_epochs=10)
        >>> schedule.update(start.next([0.99, 0.95, 0.5])).tolist()
        [1.0, 0.10000000149011612, 1.0]
    """

    name = "rule"

    def __init__(
        self,
        num_classes: int,
        *,
        expression: str,
        cap: float = 2.0,
        include_background: bool = False,
    ) -> None:
        super().__init__(num_classes)
        if not isinstance(expression, str):
            raise ValueError(f"expression must be the text of a rule, got {expression!r}")
        try:
            self.rule = parse_rule(expression)
        except LossSyntaxError as exc:
            raise ValueError(f"expression {expression!r} is not a valid rule: {exc}") from None
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not 0 < cap < math.inf:
            raise ValueError(f"cap must be finite and > 0, got {cap!r}")
        self.expression = str(self.rule)
        self.cap = float(cap)
        self.include_background = bool(include_background)
        self._previous: list[float] | None = None

    def _update(self, context: EpochContext) -> None:
        features = rule_features(
            context, self._weights, self._previous, include_background=self.include_background
        )
        values = self.rule.evaluate(features, num_classes=self.num_classes).cpu()
        keep = torch.isnan(torch.tensor(context.scores)) | ~torch.isfinite(values)
        if not self.include_background:
            keep[0] = True
        self._weights = torch.where(keep, self._weights, values.clamp(0.0, self.cap))
        self._previous = list(context.scores)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        previous = self._previous
        state["previous_scores"] = None if previous is None else _nan_to_none(previous)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        previous = state.get("previous_scores")
        self._previous = None if previous is None else _none_to_nan(previous)


def _canonical(text: str) -> str:
    return str(parse_rule(text))


TCF_RULE = _canonical("where(s > 0.9, 0.1, 1)")
"""TCF (threshold 0.9, frozen weight 0.1), exactly."""

_PLATEAU = "since > 2"  # no new best in the last delta + 1 = 3 epochs
_DROP = "best - s > 0.005"  # the current score more than epsilon below the best
_CANDIDATE = "s * fg * (1 - frozen)"  # the score of a scheduled, unfrozen class; else 0
PCF_RULE = _canonical(
    f"where(frozen > 0, w, where({_PLATEAU}, where({_DROP}, "
    f"where({_CANDIDATE} >= cmax({_CANDIDATE}), 0.1, 1), 1), 1))"
)
"""PCF-like (delta 2, epsilon 0.005, frozen weight 0.1); see the module docstring."""

_UNFROZEN = "fg * where(w < 0.5, 0, 1)"  # scheduled and not frozen (boosts stay >= 1 / 1.1)
_TRIGGER = (  # 1 for the class frozen this epoch, else 0
    f"where({_PLATEAU}, where({_DROP}, "
    f"where(s * {_UNFROZEN} >= cmax(s * {_UNFROZEN}), {_UNFROZEN}, 0), 0), 0)"
)
CBS_RULE = _canonical(
    f"where(w < 0.5, w, where(cmax({_TRIGGER}) > 0, "
    f"where({_TRIGGER} > 0, 0.1, min(1 / (s + 0.1), 2)), w))"
)
"""CBS-like (delta 2, epsilon 0.005, frozen weight 0.1, zeta 0.1, cap 2); see the module
docstring."""

SEED_RULES: dict[str, str] = {"tcf": TCF_RULE, "pcf": PCF_RULE, "cbs": CBS_RULE}
"""The hand-designed schedules as rules, to seed a search's first population."""
