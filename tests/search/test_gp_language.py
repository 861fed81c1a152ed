"""The typed DEAP primitive sets of the loss and rule languages: every seed converts both ways,
random trees are valid expressions that print, parse back, compile and give finite values and
gradients (or are screened out with a counted reason), and breeding keeps the types."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch
from deap import gp

from losslab.losses import LossSpec, get_loss, parse_loss
from losslab.losses.nodes import bind_parameters
from losslab.losses.vocabulary import LOSS_VOCABULARY
from losslab.schedules.rules import RULE_VOCABULARY, SEED_RULES, Rule, RuleSchedule, parse_rule
from losslab.search.gp.evolution import Breeder, Variation
from losslab.search.gp.language import GpLanguage
from losslab.search.gp.probe import Probe
from losslab.search.gp.rule_screen import RuleScreen, scripted_contexts
from losslab.search.gp.screening import LossScreen
from losslab.search.gp.targets import DEFAULT_LOSS_SEEDS, LOSS_TERMINALS, viable_loss

LOSSES = GpLanguage(LOSS_VOCABULARY, LOSS_TERMINALS)
RULES = GpLanguage(RULE_VOCABULARY)


def _bound(name: str):
    spec = get_loss(name)
    return bind_parameters(spec.tree, spec.parameters)


@pytest.mark.parametrize("name", DEFAULT_LOSS_SEEDS)
def test_every_library_loss_converts_to_deap_and_back(name):
    node = _bound(name)
    tree = LOSSES.from_node(node)
    assert isinstance(tree, gp.PrimitiveTree) and len(tree) > 1
    assert LOSSES.to_node(tree) == node


@pytest.mark.parametrize("name", sorted(SEED_RULES))
def test_every_seed_rule_converts_to_deap_and_back(name):
    node = parse_rule(SEED_RULES[name]).tree
    assert RULES.to_node(RULES.from_node(node)) == node


def test_a_tree_outside_the_primitive_set_is_refused_by_name():
    with pytest.raises(ValueError, match="dist"):
        LOSSES.from_node(parse_loss("vmean(fg * dist * p)").tree)
    with pytest.raises(ValueError):
        RULES.from_node(parse_loss("vmean(p * y)").tree)  # a loss is not a rule


def test_the_primitives_are_typed_by_kind():
    pset = LOSSES.pset
    names = {p.name for prims in pset.primitives.values() for p in prims}
    assert {"vmean_v", "csum_c", "add_vs", "where_Vvv", "topk_mean_vk"} <= names
    assert not any(n.startswith("add_vc") or n.startswith("add_cv") for n in names)
    assert not any(n.startswith(("vsum", "vmean", "softmax")) for n in RULES._signatures.values())


def _finite_loss(spec: LossSpec, logits, labels) -> bool:
    z = logits.clone().requires_grad_(True)
    value = spec.compile()(z, labels)
    total = value.mean() if value.dim() else value
    if not total.requires_grad:  # no path to the predictions: the screen's business
        return False
    total.backward()
    return bool(torch.isfinite(value).all() and torch.isfinite(z.grad).all())


def _random_losses(count: int, seed: int):
    random.seed(seed)
    for _ in range(count):
        yield gp.PrimitiveTree(LOSSES.ramped(2, 6))


@pytest.mark.parametrize("count", [300, pytest.param(10_000, marks=pytest.mark.slow)])
def test_random_loss_trees_are_valid_losses_or_screened_with_a_reason(count):
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(2, 3, 4, 4, 4, generator=generator)
    labels = torch.randint(0, 3, (2, 4, 4, 4), generator=generator)
    screen = LossScreen(Probe.synthetic(num_classes=3, shape=(8, 8, 8), batch=1), steps=20)
    outcome: Counter = Counter()
    for tree in _random_losses(count, seed=count):
        spec = LossSpec.from_tree(LOSSES.to_node(tree))
        text = str(spec)
        assert str(parse_loss(text)) == text  # prints and parses back to the same string
        if _finite_loss(spec, logits, labels):
            outcome["finite"] += 1
        else:  # the screen rejects it, with a reason it counts
            verdict = screen.check(spec)
            assert verdict.stage in ("duplicate", "terminals", "degenerate"), (text, verdict)
            outcome[verdict.stage] += 1
    assert sum(outcome.values()) == count
    # Random trees often miss the target or the predictions (the breeder's first generation
    # keeps only trees that use both); those that use both are nearly always finite.
    assert outcome["finite"] >= 0.05 * count and outcome["degenerate"] <= 0.05 * count, outcome


@pytest.mark.parametrize("count", [300, pytest.param(10_000, marks=pytest.mark.slow)])
def test_random_rule_trees_are_valid_schedules_with_weights_in_range(count):
    random.seed(count)
    contexts = scripted_contexts()[0]
    screen = RuleScreen()
    stages: Counter = Counter()
    for _ in range(count):
        node = RULES.to_node(gp.PrimitiveTree(RULES.ramped(2, 6)))
        assert RULES.to_node(RULES.from_node(node)) == node
        text = str(Rule.from_tree(node))
        assert str(parse_rule(text)) == text
        schedule = RuleSchedule(5, expression=text, cap=2.0)
        weights = torch.stack([schedule.update(c) for c in contexts])
        assert torch.isfinite(weights).all() and (weights >= 0).all() and (weights <= 2).all()
        stages[screen.check(text).stage] += 1
    assert stages["invalid"] == 0 and sum(stages.values()) == count


def _canonical_loss(node) -> str:
    return str(LossSpec.from_tree(node))


def _parse_loss(text: str):
    spec = parse_loss(text)
    return bind_parameters(spec.tree, spec.parameters)


def test_random_trees_of_a_first_generation_use_the_target_and_a_prediction():
    breeder = Breeder(LOSSES, Variation(), _canonical_loss, viable=viable_loss)
    trees = breeder.random_trees(50, seed=1)
    assert len(trees) == 50
    assert all(viable_loss(LOSSES.to_node(tree)) for tree in trees)


def test_breeding_keeps_types_heights_and_is_seeded():
    breeder = Breeder(LOSSES, Variation(height_limit=9), _canonical_loss)
    parents = [(_canonical_loss(_bound(n)), 0.5 + 0.01 * k) for k, n in enumerate(("ce", "dice"))]
    parents += [(t, 0.1) for t in map(breeder.text_of, breeder.random_trees(10, seed=3)) if t]
    children = breeder.breed(parents, 20, seed=7, parse=_parse_loss)
    assert len(children) == 20 and len(set(children)) == 20
    assert not set(children) & {t for t, _ in parents}
    for text in children:
        node = _parse_loss(text)
        assert LOSSES.from_node(node).height <= 9
    assert breeder.breed(parents, 20, seed=7, parse=_parse_loss) == children
    assert breeder.breed(parents, 20, seed=8, parse=_parse_loss) != children


def _rare_class_probe():
    labels = torch.zeros(2, 16, 16, 16, dtype=torch.long)
    labels[:, 2:12, 2:12, 2:12] = 1
    labels[:, 4:7, 4:7, 4:7] = 2
    labels[:, 12:14, 12:14, 12:14] = 3
    logits = 0.1 * torch.randn(2, 4, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    return logits, labels


def _dice_after_descent(text: str, logits, labels, steps: int = 10, lr: float = 1.0) -> float:
    """Mean foreground Dice after normalised gradient descent on the raw logits (the step does
    not depend on the loss's scale, so a rescaled loss gains nothing)."""
    try:
        loss = LossSpec.from_tree(_parse_loss(text)).compile()
        z = logits.clone().requires_grad_(True)
        for _ in range(steps):
            value = loss(z, labels)
            value = value.mean() if value.dim() else value
            (grad,) = torch.autograd.grad(value, z)
            norm = grad.norm()
            if not torch.isfinite(norm) or norm == 0:
                return -math.inf
            with torch.no_grad():
                z -= lr * grad / norm
    except (ValueError, RuntimeError):
        return -math.inf
    pred = z.detach().argmax(1)
    scores = []
    for c in range(1, 4):
        a, b = pred == c, labels == c
        scores.append(2 * (a & b).sum().item() / max(1, (a.sum() + b.sum()).item()))
    return sum(scores) / 3


@pytest.mark.slow
def test_gp_without_a_dice_like_seed_finds_a_loss_that_beats_cross_entropy():
    logits, labels = _rare_class_probe()
    breeder = Breeder(LOSSES, Variation(), _canonical_loss)
    ce = _canonical_loss(_bound("ce"))
    baseline = _dice_after_descent(ce, logits, labels)
    population = [ce] + [t for t in map(breeder.text_of, breeder.random_trees(23, seed=0)) if t]
    fitness: dict[str, float] = {}
    for generation in range(6):
        for text in population:
            if text not in fitness:
                fitness[text] = _dice_after_descent(text, logits, labels)
        parents = sorted(fitness.items(), key=lambda item: -item[1])[:24]
        population = breeder.breed(parents, 24, seed=generation, parse=_parse_loss)
    best, value = max(fitness.items(), key=lambda item: item[1])
    assert value > baseline + 0.01, (best, value, baseline)
    assert "vsum(p * y)" not in best  # not a Dice loss given to it


def test_the_rule_screen_passes_the_seed_rules_and_rejects_degenerate_ones():
    screen = RuleScreen()
    assert [screen.check(SEED_RULES[n]).stage for n in ("tcf", "pcf", "cbs")] == [None] * 3
    stages = {
        text: screen.check(text).stage
        for text in (
            "1",  # uniform weights
            "exp(1e-05)",  # uniform within 1e-3
            "0 * s",  # every class weight 0
            "where(s > 0.9, 0.1, 1)",  # TCF again: canonical duplicate
            "where(0.9 < s, 0.1, 1)",  # TCF's weights: a behaviour duplicate
            "where(q > 1, 1, 0)",  # not a rule
        )
    }
    assert list(stages.values()) == [
        "degenerate",
        "degenerate",
        "degenerate",
        "duplicate",
        "behaviour_duplicate",
        "invalid",
    ]
    again = RuleScreen()
    again.load_state_dict(screen.state_dict())
    assert again.check("where(s >= 0.9, 0.1, 1)").same_as == str(parse_rule(SEED_RULES["tcf"]))
