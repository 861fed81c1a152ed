"""A GP search is reproducible from its seed in any process: breeding does not depend on
hashing or memory addresses (DEAP's ``cxOnePoint`` drew its crossover type from a set of
classes), so the same parents and seed breed the same offspring in fresh processes with other
``PYTHONHASHSEED`` values and other memory layouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from deap import gp

from losslab.search.gp.evolution import one_point_crossover

# Bred in a fresh process: random first trees, then a generation of losses and one of rules.
# ``pad`` classes made before the import move the addresses of the primitive set's types.
BREED = """
import json, sys
pad = [type(f"Pad{i}", (), {}) for i in range(int(sys.argv[1]))]
from losslab.losses import get_loss, parse_loss, LossSpec
from losslab.losses.nodes import bind_parameters
from losslab.losses.vocabulary import LOSS_VOCABULARY
from losslab.schedules.rules import RULE_VOCABULARY, SEED_RULES, Rule, parse_rule
from losslab.search.gp.evolution import Breeder, Variation
from losslab.search.gp.language import GpLanguage
from losslab.search.gp.targets import LOSS_TERMINALS, viable_loss

def bound(text):
    spec = parse_loss(text)
    return bind_parameters(spec.tree, spec.parameters)

canonical = lambda node: str(LossSpec.from_tree(node))
losses = Breeder(GpLanguage(LOSS_VOCABULARY, LOSS_TERMINALS), Variation(), canonical, viable_loss)
first = [losses.text_of(t) for t in losses.random_trees(8, seed=1)]
seeds = [canonical(bind_parameters(get_loss(n).tree, get_loss(n).parameters)) for n in ("ce", "dice")]
parents = [(t, 0.3 + 0.01 * k) for k, t in enumerate(first + seeds) if t]
children = losses.breed(parents, 30, seed=7, parse=bound)
rules = Breeder(GpLanguage(RULE_VOCABULARY), Variation(), lambda node: str(Rule.from_tree(node)))
rule_parents = [(str(parse_rule(v)), 0.5) for v in SEED_RULES.values()]
rule_children = rules.breed(rule_parents, 20, seed=3, parse=lambda t: parse_rule(t).tree)
print(json.dumps([first, children, rule_children]))
"""


def test_the_same_parents_and_seed_breed_the_same_offspring_in_fresh_processes():
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", BREED, str(pad)],
            env={**os.environ, "PYTHONHASHSEED": str(hash_seed)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for hash_seed, pad in ((0, 0), (1, 7), (2, 31), (3, 100))
    ]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        outputs.append(json.loads(out))
    first, children, rule_children = outputs[0]
    assert len(children) == 30 and len(rule_children) == 20 and all(first)
    for other in outputs[1:]:
        assert other == outputs[0]


class _A: ...


class _B: ...


def test_crossover_draws_its_type_from_the_types_sorted_by_name(monkeypatch):
    """The common types reach ``random.choice`` in name order, whatever the order of the trees."""
    pset = gp.PrimitiveSetTyped("t", [], _A)
    pset.addPrimitive(lambda a, b: a, [_A, _B], _A, name="pair")
    pset.addPrimitive(lambda b: b, [_B], _B, name="wrap")
    pset.addTerminal(1.0, _A, name="a1")
    pset.addTerminal(2.0, _B, name="b1")
    tree = gp.PrimitiveTree.from_string("pair(pair(a1, b1), wrap(b1))", pset)
    offered = []

    def choice(options):
        offered.append(list(options))
        return options[0]

    monkeypatch.setattr("losslab.search.gp.evolution.random.choice", choice)
    one_point_crossover(gp.PrimitiveTree(tree), gp.PrimitiveTree(tree[::1]))
    assert offered[0] == [_A, _B]


def test_crossover_leaves_a_one_node_tree_alone():
    pset = gp.PrimitiveSetTyped("u", [], _A)
    pset.addPrimitive(lambda a, b: a, [_A, _B], _A, name="pair")
    pset.addTerminal(1.0, _A, name="a1")
    pset.addTerminal(2.0, _B, name="b1")
    one = gp.PrimitiveTree([pset.mapping["a1"]])
    two = gp.PrimitiveTree.from_string("pair(a1, b1)", pset)
    assert one_point_crossover(one, two) == (one, two)
