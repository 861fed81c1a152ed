"""The screen of learned class-weight rules, before any of them is trained.

A rule is run as a class schedule on scripted per-class score sequences (rising, plateauing,
falling back, passing TCF's threshold, unscored epochs), which costs milliseconds. In this order it is rejected when it
does not type-check (``invalid``), when its canonical form was seen (``duplicate``), when its
weights are not finite, are zero for every foreground class at some epoch or never differ from uniform weights
(``degenerate``: uniform weights, within 1e-3, are the baseline already), or when its weight trajectories are
those of a rule that passed before (``behaviour_duplicate``, whose fitness is then reused).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from typing import Any

import torch

from losslab.losses.nodes import Node, to_source
from losslab.schedules.context import EpochContext
from losslab.schedules.rules import RuleSchedule, parse_rule
from losslab.search.gp.verdict import Verdict

__all__ = ["RULE_STAGES", "RuleScreen", "scripted_contexts"]

RULE_STAGES = ("invalid", "duplicate", "degenerate", "behaviour_duplicate")
NAN = math.nan


# A run in which the best foreground class peaks at epoch 3 and declines (PCF and CBS
# trigger), one where a class passes TCF's threshold, and one with unscored epochs.
_RUNS = (
    [
        [0.95, 0.5, 0.2, 0.1, 0.05],
        [0.96, 0.7, 0.3, 0.15, 0.05],
        [0.97, 0.8, 0.4, 0.2, 0.1],
        [0.97, 0.78, 0.5, 0.25, 0.1],
        [0.98, 0.77, 0.55, 0.3, 0.15],
        [0.98, 0.76, 0.6, 0.3, 0.15],
        [0.98, 0.76, 0.58, 0.35, 0.2],
        [0.99, 0.75, 0.57, 0.35, 0.2],
        [0.99, 0.75, 0.56, 0.4, 0.25],
        [0.99, 0.74, 0.55, 0.4, 0.25],
    ],
    [
        [0.9, 0.6, 0.3, 0.1, 0.0],
        [0.92, 0.85, 0.4, 0.2, 0.0],
        [0.95, 0.93, 0.5, 0.2, 0.05],
        [0.96, 0.95, 0.6, 0.3, 0.05],
        [0.97, 0.96, 0.65, 0.3, 0.1],
        [0.97, 0.96, 0.7, 0.35, 0.1],
    ],
    [
        [0.9, NAN, 0.2, 0.1, NAN],
        [0.92, 0.5, 0.3, NAN, 0.1],
        [0.93, 0.6, NAN, 0.2, 0.1],
        [0.95, 0.6, 0.4, 0.2, NAN],
        [0.95, 0.55, 0.4, 0.25, 0.2],
        [0.96, 0.5, 0.45, 0.2, 0.2],
    ],
)


def scripted_contexts() -> list[list[EpochContext]]:
    """The scripted runs of five classes as epoch contexts (deterministic)."""
    frequencies = [0.9, 0.05, 0.03, 0.015, 0.005]
    runs = []
    for rows in _RUNS:
        context = EpochContext.start(frequencies, total_epochs=len(rows))
        chain = []
        for row in rows:
            context = context.next(row)
            chain.append(context)
        runs.append(chain)
    return runs


class RuleScreen:
    """Screens rule expressions (see the module docstring); ``counts`` per stage and "passed"."""

    stages = RULE_STAGES

    def __init__(self, cap: float = 2.0):
        self.cap = cap
        self.runs = scripted_contexts()
        self.counts: Counter = Counter()
        self._seen: set[str] = set()
        self._hashes: dict[str, str] = {}

    def seen(self, canonical: str) -> bool:
        return canonical in self._seen

    def _trajectory(self, text: str) -> torch.Tensor:
        rows = []
        for run in self.runs:
            schedule = RuleSchedule(5, expression=text, cap=self.cap)
            schedule.begin(EpochContext.start(run[0].frequencies, run[0].total_epochs))
            rows.extend(schedule.update(context) for context in run)
        return torch.stack(rows)

    def check(self, rule: str | Node) -> Verdict:
        verdict = self._check(rule)
        self.counts[verdict.stage or "passed"] += 1
        return verdict

    def _check(self, rule: str | Node) -> Verdict:
        try:
            text = str(parse_rule(rule if isinstance(rule, str) else to_source(rule)))
        except ValueError as exc:
            return Verdict("invalid", str(exc).splitlines()[0])
        if text in self._seen:
            return Verdict("duplicate", "seen before")
        self._seen.add(text)
        try:
            weights = self._trajectory(text)
        except (ValueError, RuntimeError) as exc:
            return Verdict("invalid", str(exc).splitlines()[0])
        if not torch.isfinite(weights).all():
            return Verdict("degenerate", "non-finite weights")
        if (weights[:, 1:].sum(1) == 0).any():  # the background is left at 1 by the schedule
            return Verdict("degenerate", "every foreground class gets weight 0 at some epoch")
        if ((weights - 1).abs() < 1e-3).all():
            return Verdict("degenerate", "the weights never leave 1 (uniform weights)")
        rounded = torch.round(weights * 1000).to(torch.int32).numpy().tobytes()
        digest = hashlib.sha256(rounded).hexdigest()[:16]
        if digest in self._hashes:
            earlier = self._hashes[digest]
            return Verdict(
                "behaviour_duplicate",
                f"the weights of {earlier}",
                same_as=earlier,
                gradient_hash=digest,
            )
        self._hashes[digest] = text
        return Verdict(None, gradient_hash=digest)

    def state_dict(self) -> dict[str, Any]:
        return {
            "seen": sorted(self._seen),
            "hashes": dict(self._hashes),
            "counts": dict(self.counts),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._seen = set(state.get("seen", []))
        self._hashes = dict(state.get("hashes", {}))
        self.counts = Counter(state.get("counts", {}))
