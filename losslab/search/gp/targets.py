"""What a GP study evolves: loss expressions or class-weight rules.

A target ties together a vocabulary of the expression language (its DEAP primitive set), the
canonical form of an expression, the seeds of the first population, the screen that every
individual passes before it is trained, and the candidate an expression becomes (the fixed
rest of the candidate comes from the study's space).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from losslab.candidate import Candidate, ScheduleSpec
from losslab.losses import LossSpec, get_loss, parse_loss
from losslab.losses.library import LIBRARY
from losslab.losses.nodes import Node, Var, bind_parameters, iter_nodes
from losslab.losses.parser import LossSyntaxError
from losslab.losses.spec import has_gradient_path
from losslab.losses.vocabulary import LOSS_VOCABULARY
from losslab.schedules.rule_probe import check_rule_values
from losslab.schedules.rules import RULE_VOCABULARY, SEED_RULES, Rule, parse_rule
from losslab.search.gp.language import GpLanguage
from losslab.search.space import SearchSpace, SpaceError

__all__ = ["TARGETS", "GpTarget", "fixed_choice", "make_target", "viable_loss"]

TARGETS = ("loss", "class_schedule")
# ``dist`` (a distance transform per batch, on the CPU) is left out of random trees: too slow
# for a search; the boundary loss can still be written by hand.
LOSS_TERMINALS = ("p", "logp", "z", "y", "fg", "w", "nc")
DEFAULT_LOSS_SEEDS = (
    "ce",
    "wce",
    "focal",
    "topk_ce",
    "dice",
    "dl2",
    "iou",
    "tversky",
    "f_beta",
    "gdl",
    "ss",
    "asymmetric_focal",
    "asymmetric_large_margin",
)


def fixed_choice(options: Sequence[Any], where: str) -> Any:
    """The one option of a fixed part of a GP study's space (no choice, no range)."""
    if len(options) != 1:
        raise SpaceError(
            where, f"the gp backend needs exactly one fixed option, got {len(options)}"
        )
    option = options[0]
    searched = [k for k, d in getattr(option, "params", {}).items() if d.searched]
    searched += [str(i) for i, d in enumerate(getattr(option, "term_weights", ())) if d.searched]
    if searched:
        raise SpaceError(
            f"{where}.{option.label}.{searched[0]}",
            "the gp backend evolves expressions; a searched range belongs to the optuna backend",
        )
    return option


def _fixed(dist_name: str, dist: Any) -> Any:
    return dist.values()[0]


@dataclass
class GpTarget:
    """One target of a GP study (see the module docstring)."""

    name: str
    language: GpLanguage
    canonical: Callable[[Node], str]
    parse: Callable[[str], Node]
    seeds: tuple[str, ...]
    candidate: Callable[[str], Candidate]
    viable: Callable[[Node], bool] | None = None


def viable_loss(node: Node) -> bool:
    """Whether a loss tree reads the target ``y`` and has a gradient path to a prediction."""
    reads_target = any(isinstance(n, Var) and n.name == "y" for n in iter_nodes(node))
    return reads_target and has_gradient_path(node)


def _loss_canonical(node: Node) -> str:
    try:
        return str(LossSpec.from_tree(node))
    except LossSyntaxError as exc:
        raise ValueError(str(exc)) from None


def _loss_seed(name: str) -> str:
    if name not in LIBRARY or LIBRARY[name].text is None:
        raise ValueError(f"not a single-term library loss: {name!r}")
    spec = get_loss(name)
    return _loss_canonical(bind_parameters(spec.tree, spec.parameters))


def _rule_canonical(node: Node) -> str:
    try:
        return str(Rule.from_tree(node))
    except LossSyntaxError as exc:
        raise ValueError(str(exc)) from None


def _rule_seed(name: str) -> str:
    if name not in SEED_RULES:
        raise KeyError(name)
    return str(parse_rule(SEED_RULES[name]))


def make_target(space: SearchSpace, settings: Any) -> GpTarget:
    """The target named by ``space.target`` with the fixed rest of its candidates.

    Raises:
        SpaceError: an unknown target, a seed that is not valid, or a fixed part that holds a
            choice or a range.
    """
    target = space.structure.get("target", "loss")
    if target not in TARGETS:
        raise SpaceError("space.target", f"one of {', '.join(TARGETS)}, got {target!r}")
    seeds = space.structure.get("seeds")
    if seeds is not None and (
        not isinstance(seeds, list) or not all(isinstance(s, str) for s in seeds)
    ):
        raise SpaceError("space.seeds", f"a list of names or expressions, got {seeds!r}")
    term_opt = fixed_choice(space.term_schedules, "space.term_schedule")
    term_schedule = term_opt.build(_fixed, "term_schedule")
    if target == "loss":
        if space.losses:
            raise SpaceError(
                "space.loss",
                "the gp backend evolves the loss (target: loss); seed it with space.seeds",
            )
        class_opt = fixed_choice(space.class_schedules, "space.class_schedule")
        class_schedule = class_opt.build(_fixed, "class_schedule")
        language = GpLanguage(LOSS_VOCABULARY, LOSS_TERMINALS)
        seed_texts = _seed_texts(
            seeds or DEFAULT_LOSS_SEEDS,
            _loss_seed,
            _parse_loss_text,
            _loss_canonical,
            lambda text: LossSpec.from_tree(_parse_loss_text(text)).require_trainable(),
        )

        def candidate(text: str) -> Candidate:
            spec = LossSpec.from_tree(_parse_loss_text(text))
            return Candidate(
                terms=(spec,),
                term_weights=(1.0,),
                class_schedule=class_schedule,
                term_schedule=term_schedule,
                name=text,
            )

        return GpTarget(
            "loss", language, _loss_canonical, _parse_loss_text, seed_texts, candidate, viable_loss
        )
    if space.class_schedules != SearchSpace().class_schedules:
        raise SpaceError(
            "space.class_schedule",
            "the gp backend evolves the class schedule (target: class_schedule); seed it with "
            "space.seeds",
        )
    if not space.losses:
        raise SpaceError("space.loss", "target class_schedule needs the fixed loss to train with")
    loss_opt = fixed_choice(space.losses, "space.loss")
    terms, weights = loss_opt.build(_fixed, "loss")
    cap = settings.cap
    language = GpLanguage(RULE_VOCABULARY)
    seed_texts = _seed_texts(
        seeds or tuple(SEED_RULES),
        _rule_seed,
        lambda t: parse_rule(t).tree,
        _rule_canonical,
        lambda text: check_rule_values(text, cap),
    )

    def rule_candidate(text: str) -> Candidate:
        return Candidate(
            terms=terms,
            term_weights=weights,
            class_schedule=ScheduleSpec.of("rule", expression=text, cap=cap),
            term_schedule=term_schedule,
            name=f"{loss_opt.label}+rule({text})",
        )

    return GpTarget(
        "class_schedule",
        language,
        _rule_canonical,
        lambda text: parse_rule(text).tree,
        seed_texts,
        rule_candidate,
    )


def _parse_loss_text(text: str) -> Node:
    """The tree of a loss text with its parameters bound to numbers (GP trees have none)."""
    spec = parse_loss(text)
    return bind_parameters(spec.tree, spec.parameters)


def _seed_texts(names, named, parse, canonical, check=None) -> tuple[str, ...]:
    """Canonical texts of the seeds: names (library losses, seed rules) or expressions, each
    passed to ``check`` (which raises ``ValueError`` for a seed that cannot be trained)."""
    out = []
    for k, name in enumerate(names):
        try:
            text = named(name)
        except (ValueError, KeyError):
            try:
                text = canonical(parse(name))
            except (ValueError, KeyError) as exc:
                raise SpaceError(f"space.seeds[{k}]", f"{name!r}: {exc}") from None
        if check is not None:
            try:
                check(text)
            except ValueError as exc:  # LossSyntaxError included
                raise SpaceError(f"space.seeds[{k}]", f"{name!r}: {exc}") from None
        out.append(text)
    return tuple(dict.fromkeys(out))
