"""Breeding a generation: tournament selection with parsimony, typed crossover and mutation.

The population is kept as canonical expression texts (what the study store holds); breeding
converts them to DEAP trees, varies them with DEAP's typed operators under a static height
limit (bloat control), and converts the offspring back to canonical texts. Selection is a
tournament on fitness minus ``parsimony`` per node (parsimony pressure). Every random choice
comes from a seed derived from the study's seed and the generation, and none depends on hashing
or memory addresses (DEAP's ``cxOnePoint`` draws the crossover type from a set of classes, whose
order follows their addresses: :func:`one_point_crossover` draws it from the types sorted by
name), so a resumed study, another worker or another process breeds the same generation.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from deap import gp

from losslab.losses.nodes import iter_nodes
from losslab.search.gp.language import FRACTIONS, Constant, GpLanguage

__all__ = ["Breeder", "Variation", "one_point_crossover"]


@dataclass(frozen=True)
class Variation:
    """The rates and limits of breeding (the ``gp:`` section of a study file)."""

    cxpb: float = 0.5
    mutpb: float = 0.4
    height_limit: int = 10
    tournament_size: int = 3
    parsimony: float = 0.002
    init_min_height: int = 2
    init_max_height: int = 4


@contextmanager
def _seeded(seed: int):
    """DEAP's operators draw from the global ``random``: seed it, and restore it after."""
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


def one_point_crossover(
    ind1: gp.PrimitiveTree, ind2: gp.PrimitiveTree
) -> tuple[gp.PrimitiveTree, gp.PrimitiveTree]:
    """Swap a random subtree of ``ind1`` with a random subtree of the same type in ``ind2``.

    DEAP's ``gp.cxOnePoint`` for strongly typed trees (Koza's one-point crossover), except that
    the type of the crossover point is drawn from the types both trees hold sorted by name,
    not from a set of classes (whose order follows memory addresses and so changes from one
    process to the next). The roots are never swapped.
    """
    if len(ind1) < 2 or len(ind2) < 2:
        return ind1, ind2
    positions1: dict[type, list[int]] = {}
    positions2: dict[type, list[int]] = {}
    for index, node in enumerate(ind1[1:], 1):
        positions1.setdefault(node.ret, []).append(index)
    for index, node in enumerate(ind2[1:], 1):
        positions2.setdefault(node.ret, []).append(index)
    common = sorted(
        (t for t in positions1 if t in positions2), key=lambda t: (t.__module__, t.__qualname__)
    )
    if common:
        type_ = random.choice(common)
        slice1 = ind1.searchSubtree(random.choice(positions1[type_]))
        slice2 = ind2.searchSubtree(random.choice(positions2[type_]))
        ind1[slice1], ind2[slice2] = ind2[slice2], ind1[slice1]
    return ind1, ind2


def _mutate_constant(tree: gp.PrimitiveTree) -> gp.PrimitiveTree:
    """Move one numeric constant: a scalar is scaled by ``exp(N(0, 0.7))``, a constant-only
    argument takes another of the fractions."""
    positions = [
        i
        for i, item in enumerate(tree)
        if isinstance(item, gp.Terminal) and isinstance(item.value, float)
    ]
    if not positions:
        return tree
    i = random.choice(positions)
    old = tree[i]
    if old.ret is Constant:
        value = random.choice(FRACTIONS)
    else:
        value = float(f"{old.value * math.exp(random.gauss(0.0, 0.7)):.3g}")
    tree[i] = gp.Terminal(value, False, old.ret)
    return tree


class Breeder:
    """Breeds generations of one :class:`GpLanguage` (see the module docstring).

    Args:
        language: the primitive set and conversions.
        variation: rates and limits.
        canonical: maps a language tree to its canonical text, or raises ``ValueError`` when it
            is not a valid expression of the target (the loss or rule type check).
        viable: whether a random tree is worth screening at all (a loss that reads both the
            target and a prediction); random trees of a first generation are drawn until they
            are (most random trees miss one or the other).
    """

    def __init__(
        self,
        language: GpLanguage,
        variation: Variation,
        canonical: Callable,
        viable: Callable | None = None,
    ):
        self.language, self.variation, self.canonical = language, variation, canonical
        self.viable = viable
        pset = language.pset
        limit = gp.staticLimit(key=operator.attrgetter("height"), max_value=variation.height_limit)
        self._crossover = limit(one_point_crossover)
        self._subtree = limit(partial(gp.mutUniform, expr=language.subtree, pset=pset))
        self._point = limit(partial(gp.mutNodeReplacement, pset=pset))

    # -- conversions -------------------------------------------------------------------------

    def text_of(self, tree: gp.PrimitiveTree) -> str | None:
        """The canonical text of a DEAP tree, ``None`` when it is not a valid expression."""
        try:
            return self.canonical(self.language.to_node(tree))
        except ValueError:
            return None

    def tree_of(self, node) -> gp.PrimitiveTree:
        return self.language.from_node(node)

    @staticmethod
    def size(node) -> int:
        return sum(1 for _ in iter_nodes(node))

    # -- random trees ------------------------------------------------------------------------

    def random_trees(self, count: int, seed: int) -> list[gp.PrimitiveTree]:
        """``count`` random trees (ramped half-and-half) within the height limit."""
        v = self.variation
        trees = []
        with _seeded(seed):
            attempts = 0
            while len(trees) < count and attempts < 1000 * count:
                attempts += 1
                tree = gp.PrimitiveTree(self.language.ramped(v.init_min_height, v.init_max_height))
                if tree.height <= v.height_limit and (
                    self.viable is None or self.viable(self.language.to_node(tree))
                ):
                    trees.append(tree)
        return trees

    # -- a generation ------------------------------------------------------------------------

    def _select(self, parents: Sequence[tuple[gp.PrimitiveTree, float]]):
        """One parent by tournament on fitness minus parsimony per node."""
        aspirants = [random.choice(parents) for _ in range(self.variation.tournament_size)]
        return max(aspirants, key=lambda p: p[1] - self.variation.parsimony * len(p[0]))[0]

    def breed(
        self, parents: Sequence[tuple[str, float]], count: int, seed: int, parse: Callable
    ) -> list[str]:
        """The canonical texts of ``count`` offspring of ``parents`` (text, fitness).

        ``parents`` are the best individuals evaluated so far (a (mu + lambda) strategy: the
        best survive by staying among the parents, never by being trained again). Offspring
        are tournament winners varied by crossover (``cxpb``) and by one of subtree, point or
        constant mutation (``mutpb``); ``parse`` turns a parent's text back into a language
        tree. Offspring repeat neither each other nor a parent where avoidable (the screen
        counts the duplicates that remain).
        """
        v = self.variation
        # Ties in fitness (a reused duplicate's) go by text, not by the order of the ledger
        # (an interrupted individual trains again later, in another entry).
        ranked = sorted(
            ((t, f) for t, f in parents if math.isfinite(f)), key=lambda p: (-p[1], p[0])
        )
        if not ranked:
            return [t for t in (self.text_of(x) for x in self.random_trees(count, seed)) if t]
        pool = []
        for text, fitness in ranked:
            try:
                pool.append((self.tree_of(parse(text)), fitness))
            except ValueError:
                continue
        out: list[str] = []
        seen = {t for t, _ in ranked}
        with _seeded(seed):
            attempts = 0
            while len(out) < count and attempts < 50 * count:
                attempts += 1
                child = gp.PrimitiveTree(self._select(pool))
                if random.random() < v.cxpb:
                    other = gp.PrimitiveTree(self._select(pool))
                    child, _ = self._crossover(child, other)
                if random.random() < v.mutpb:
                    operation = random.choice((self._subtree, self._point, _mutate_constant))
                    result = operation(child)  # staticLimit answers a list of one tree
                    child = result if isinstance(result, gp.PrimitiveTree) else result[0]
                text = self.text_of(child)
                if text is None or (text in seen and attempts < 40 * count):
                    continue
                seen.add(text)
                out.append(text)
        return out
