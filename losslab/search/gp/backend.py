"""The GP backend: genetic programming over loss expressions or class-weight rules (DEAP).

Each generation is bred from the best individuals evaluated so far (a (mu + lambda) strategy
with tournament selection under parsimony pressure, typed crossover and subtree, point and
constant mutation, a static height limit), screened, and proposed as one batch: only the
individuals that pass the screen are trained. The first generation holds the seeds (the
library losses, or TCF, PCF and CBS written as rules) and random trees.

Everything the search must remember is in the study store (``context.state``): the generation
number, the individuals of the generation not yet proposed, the screen's memory (canonical
forms and gradient hashes seen) and its counts. Fitness is read from the ledger (each trial's
``gp.expression``), so a study killed between or inside a generation continues from its last
finished evaluation with the same population: nothing lost, nothing trained twice. Breeding is
seeded by the study's seed and the generation, so any worker breeds the same generation.

Per generation, the study's MLflow parent run gets ``gp/best``, ``gp/median``, ``gp/worst``
fitness, ``gp/unique`` individuals, ``screen/<stage>`` counts (step = generation) and the tag
``gp.best_expression``; each trial run is tagged with its generation and expression.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from losslab.search.backend import BackendContext, Proposal, SearchBackend, Slot, TrialRecord
from losslab.search.gp.evolution import Breeder
from losslab.search.gp.settings import GpSettings, check_settings
from losslab.search.gp.targets import make_target
from losslab.search.space import SearchSpace
from losslab.training import Result

__all__ = ["GpBackend"]

EXPRESSION, GENERATION = "gp.expression", "gp.generation"
_REBREED = 5  # breeding attempts when a whole generation is screened out


def _claim_key(generation: int, text: str) -> str:
    """The claim of one individual of one generation (a hash: expressions are long)."""
    return f"g{generation}.{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class GpBackend(SearchBackend):
    """Genetic programming over expressions (see the module docstring)."""

    name: ClassVar[str] = "gp"
    space_keys: ClassVar[frozenset[str]] = frozenset({"target", "seeds"})

    @classmethod
    def check_settings(cls, raw: Mapping[str, Any], *, epochs: int) -> GpSettings:
        return check_settings(raw)

    @classmethod
    def check_space(cls, space: SearchSpace) -> None:
        make_target(space, GpSettings())

    def __init__(self, context: BackendContext):
        super().__init__(context)
        self.settings: GpSettings = context.settings
        self.target = make_target(context.space, self.settings)
        self.breeder = Breeder(
            self.target.language,
            self.settings.variation,
            self.target.canonical,
            self.target.viable,
        )
        self._screen = None

    # -- the screen (built on first use: the probe reads the data) ---------------------------

    @property
    def screen(self):
        if self._screen is None:
            if self.target.name == "loss":
                from losslab.search.gp.probe import Probe
                from losslab.search.gp.screening import LossScreen

                dataset = self.context.dataset
                probe = (
                    Probe.from_dataset(dataset, seed=self._seed())
                    if dataset is not None
                    else Probe.synthetic(seed=self._seed())
                )
                self._screen = LossScreen(probe, steps=self.settings.screen_steps)
            else:
                from losslab.search.gp.rule_screen import RuleScreen

                self._screen = RuleScreen(cap=self.settings.cap)
            self._screen.load_state_dict(self.context.state.get("screen", {}))
        return self._screen

    def _seed(self) -> int:
        """The breeding seed: the study file's, the same in every worker (workers starting
        together all breed the first generation, and must breed the same one); kept in the
        store."""
        state = self.context.state
        seed = state.get("seed")
        if seed is None:
            study_seed = self.context.study_seed
            seed = int(self.context.seed if study_seed is None else study_seed)
            state.put("seed", seed)
        return seed

    # -- ask and tell ------------------------------------------------------------------------

    def batch_size(self) -> int:
        """The individuals of the generation that no worker has taken yet; :attr:`WAIT` while
        the rest of it trains in other workers (interrupted ones come back from the store), so
        a generation is complete before the next is bred; then the next generation."""
        state = self.context.state
        members = state.get("members", [])
        fitness = self._fitness()
        if any(t not in fitness for t in members):
            return len(self._open(fitness)) or self.WAIT
        return 0 if self._finished() else len(self._next_generation())

    def _open(self, fitness: dict[str, float]) -> list[str]:
        """The generation's individuals still to propose: queued, not evaluated, and not taken
        by another live worker (a worker takes each one it proposes, see :meth:`ask`)."""
        state = self.context.state
        generation = state.get("generation", 0)
        return [
            t
            for t in state.get("queue", [])
            if t not in fitness and not state.taken(_claim_key(generation, t))
        ]

    def _finished(self) -> bool:
        return self.context.state.get("generation", -1) + 1 >= self.settings.generations

    def ask(self, slots: Sequence[Slot]) -> list[Proposal]:
        """Each slot takes the next open individual of the generation. Workers share a
        generation: each individual is claimed in the study store before it is proposed, so
        two workers asking at once never propose the same one."""
        state = self.context.state
        queue = self._open(self._fitness())
        proposals = []
        for slot in slots:
            if slot.retry is not None:  # replayed as it was by the study
                proposals.append(slot.retry)
                continue
            generation = state.get("generation", 0)
            text = None
            while queue and text is None:
                head = queue.pop(0)
                if state.claim(_claim_key(generation, head)):
                    text = head
            if text is None:  # other workers took the rest of the generation meanwhile
                proposals.append(Proposal(None, withdrawn=True))
                continue
            if text is None:
                proposals.append(Proposal(None, invalid="every individual was screened out"))
                continue
            proposals.append(self._proposal(text, generation))
        state.put("queue", queue)
        return proposals

    def _proposal(self, text: str, generation: int) -> Proposal:
        try:
            candidate = self.target.candidate(text)
        except ValueError as exc:  # failed, and its fitness -inf (the ledger keeps the text)
            return Proposal(
                None,
                params={EXPRESSION: text, GENERATION: generation},
                invalid=f"not a valid candidate: {exc}",
            )
        return Proposal(
            candidate,
            params={EXPRESSION: text, GENERATION: generation},
            tags={"losslab.gp.generation": str(generation), "losslab.gp.expression": text[:250]},
        )

    def tell(
        self, slot: Slot, proposal: Proposal, record: TrialRecord, result: Result | None
    ) -> None:
        return None  # fitness is read from the ledger when the next generation is bred

    def close(self) -> None:
        state = self.context.state
        generation = state.get("generation", -1)
        if generation >= 0 and not state.get("queue") and state.get("logged", -1) < generation:
            self._log_generation(generation, self._fitness())

    # -- generations -------------------------------------------------------------------------

    def _fitness(self) -> dict[str, float]:
        """Every evaluated expression's fitness (``-inf`` for a failed one), from the ledger,
        and the fitness reused by the gradient (or behaviour) duplicates of an evaluated one.
        The fitness is the rung-0 value (the one every individual has, so comparable); the
        fidelity ladder's higher rungs rank parents first (:meth:`_reached`)."""
        fitness: dict[str, float] = {}
        for record in self.context.records():
            text = record.params.get(EXPRESSION)
            if text is None or record.root is not None:
                continue
            value = record.value if record.status != "failed" else -math.inf
            fitness[text] = -math.inf if math.isnan(value) else value
        for text, same_as in self.context.state.get("reused", {}).items():
            if same_as in fitness:
                fitness.setdefault(text, fitness[same_as])
        return fitness

    def _reached(self) -> dict[str, int]:
        """The highest rung of the fidelity ladder each expression reached (promotions are
        the ladder's verdict on rung-0 values, read with more training)."""
        reached: dict[str, int] = {}
        for record in self.context.records():
            text = record.params.get(EXPRESSION)
            if text is not None and record.status == "ok":
                reached[text] = max(reached.get(text, 0), record.rung)
        return reached

    def _next_generation(self, force: bool = False) -> list[str]:
        """Breed, screen and store the next generation; returns the texts to train."""
        state = self.context.state
        generation = state.get("generation", -1)
        if self._finished() and not force:
            return []
        fitness = self._fitness()
        if generation >= 0 and state.get("logged", -1) < generation:
            self._log_generation(generation, fitness)
        generation += 1
        seed = self._seed() * 1_000_003 + generation
        population = self.settings.population
        parents = rank_parents(fitness, self._reached(), population)
        screen, counts, passed, bred, reused = self.screen, {}, [], [], {}
        for attempt in range(_REBREED):
            if generation == 0 and attempt == 0:
                seeds = list(self.target.seeds[:population])
                randoms = self.breeder.random_trees(population - len(seeds), seed)
                texts = seeds + [t for t in map(self.breeder.text_of, randoms) if t]
            else:
                texts = self.breeder.breed(parents, population, seed + attempt * 7919, self._parse)
            bred.extend(texts)
            for text in texts:
                verdict = screen.check(text)
                stage = verdict.stage or "passed"
                counts[stage] = counts.get(stage, 0) + 1
                if verdict.passed:
                    passed.append(text)
                elif verdict.same_as:
                    reused[text] = verdict.same_as
            if passed:
                break
        state.put("reused", {**state.get("reused", {}), **reused})
        state.put("screen", screen.state_dict())
        stats = state.get("screened", {})
        stats[str(generation)] = {"counts": counts, "unique": len(set(bred))}
        state.put("screened", stats)
        state.put("queue", passed)
        state.put("members", passed)
        state.put("generation", generation)
        return passed

    def _parse(self, text: str):
        return self.target.parse(text)

    def _log_generation(self, generation: int, fitness: dict[str, float]) -> None:
        state = self.context.state
        values = [
            r.value
            for r in self.context.records()
            if r.params.get(GENERATION) == generation
            and math.isfinite(r.value)
            and r.root is None  # rung 0: the generation's own evaluations
        ]
        info = state.get("screened", {}).get(str(generation), {})
        metrics: dict[str, float] = {
            f"screen/{stage}": float(n) for stage, n in info.get("counts", {}).items()
        }
        metrics["gp/unique"] = float(info.get("unique", 0))
        metrics["gp/trained"] = float(len(values))
        if values:
            metrics.update(
                {
                    "gp/best": max(values),
                    "gp/median": statistics.median(values),
                    "gp/worst": min(values),
                }
            )
        tags = {}
        ranked = [(t, f) for t, f in fitness.items() if math.isfinite(f)]
        if ranked:
            best_text, best_value = max(ranked, key=lambda item: item[1])
            tags = {"gp.best_expression": best_text[:5000], "gp.best_fitness": f"{best_value:.4f}"}
        self.context.log(metrics, generation, tags)
        state.put("logged", generation)


def rank_parents(
    fitness: dict[str, float], reached: dict[str, int], population: int
) -> list[tuple[str, float]]:
    """The next generation's parents: best first (the highest rung of the fidelity ladder
    reached, then the rung-0 fitness), ties by text, so the same parents whatever the order
    of the ledger's entries."""
    ranked = sorted(fitness.items(), key=lambda item: (-reached.get(item[0], 0), -item[1], item[0]))
    return ranked[:population]
