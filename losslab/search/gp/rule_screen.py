"""The screen of learned class-weight rules, before any of them is trained.

A rule is run as a class schedule on scripted per-class score sequences (rising, plateauing,
falling back, unscored epochs), which costs microseconds. In this order it is rejected when it
does not type-check (``invalid``), when its canonical form was seen (``duplicate``), when its
weights are not finite, are all zero at some epoch or never differ from uniform weights
(``degenerate``: uniform weights are the baseline already), or when its weight trajectories are
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
from losslab.search.screening import Verdict

__all__ = ["RULE_STAGES", "RuleScreen", "scripted_contexts"]

RULE_STAGES = ("invalid", "duplicate", "degenerate", "behaviour_duplicate")
NAN = math.nan


def scripted_contexts() -> list[list[EpochContext]]:
    """Three scripted runs of five classes over ten epochs (deterministic)."""
    frequencies = [0.9, 0.05, 0.03, 0.015, 0.005]
    runs = []
    for shift in (0.0, 0.1, 0.2):
        rows = []
        for epoch in range(1, 11):
            ramp = min(1.0, epoch / 6)
            rows.append(
                [
                    min(0.99, 0.9 + 0.01 * epoch),
                    min(0.95, 0.3 + 0.6 * ramp + shift * 0.1),
                    0.2 + 0.5 * ramp - (0.05 if epoch in (7, 8) else 0.0) + shift,
                    (0.1 + 0.3 * ramp + shift) if epoch % 4 else NAN,
                    0.05 * epoch * (1 - shift) if epoch < 9 else 0.3,
                ]
            )
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
        if (weights.sum(1) == 0).any():
            return Verdict("degenerate", "every class gets weight 0 at some epoch")
        if (weights == 1).all():
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
