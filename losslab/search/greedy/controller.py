"""The greedy controller (Seo, Bassenne and Xing 2020, as read by Hun): loss parameters steered
by look-ahead during one training run.

Every ``every`` optimiser steps the controller takes a :class:`~losslab.training.Snapshot` of
the run; for each combination of actions over the controlled parameters (decrease, keep,
increase) it sets the parameters, takes ``lookahead`` real training steps, scores the model on
the run's held-out validation patches with the study's objective (soft Dice per class by
default, hard Dice on request) and restores the snapshot. The best combination's values are
then set and training goes on *from the snapshot*: the look-ahead steps are spent, never kept,
so the controlled run trains exactly as a plain run with the chosen piecewise-constant
parameter schedule would, and replaying that schedule (:meth:`GreedyController.schedule`)
reproduces it step for step at a fraction of the cost. Seo's public code scores its 27
combinations without a trial step (all scores equal, "keep" always wins); here every
combination gets a real look-ahead.

Actions: a parameter whose range lies inside ``[0, 1]`` moves by ``-step, 0, +step``; any other
parameter is multiplied by ``1 - step, 1, 1 + step`` (a value of 0, which a product cannot
move, moves by ``+-step``). Values are clipped to the parameter's range from the loss library;
combinations that clip to the same values are tried once. With more than ``max_joint``
parameters the Cartesian product (3^P) is replaced by one parameter at a time (2P + 1
combinations), and the run says so (tag ``greedy.mode``). Ties go to "keep", then to the first
combination in order. A combination whose look-ahead goes non-finite scores as the worst, is
never chosen, and is counted and listed in the run's trajectory.

Batched look-ahead (``batched``: ``auto``, ``on``, ``off``): all the combinations of one
decision can train as one population (:func:`~losslab.training.branches.train_branches`):
stacked copies of the snapshot's network and optimiser state, each with its own loss
parameters, on the same batches the one-at-a-time look-ahead draws (it restores the sampler
before each combination, so every combination sees the same patches). The scores agree up to
float rounding, so the same combination is chosen but for near-ties. ``auto`` batches on a CUDA
device only: on the CPU the batched look-ahead measured slower (``docs/benchmarks.md``). A run
whose branches cannot be batched (dropout, an operation without a batching rule, an error in
the batched step) goes on one combination at a time, logs why, and says so in the tags
``greedy.lookahead`` and ``greedy.lookahead_fallback``; a CUDA out-of-memory error halves the
number of combinations trained at once (down to one) before it falls back.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from losslab.candidate import Candidate
from losslab.schedules import PiecewiseParams
from losslab.training import Hook, Result, Snapshot, TrainState
from losslab.training.branches import BranchesUnsupported, draw_batches, train_branches

__all__ = ["BATCHED_MODES", "GreedyController", "GreedyPlan", "action_values"]

JOINT, ONE_AT_A_TIME = "joint", "one_at_a_time"
BATCHED_MODES = ("auto", "on", "off")
_log = logging.getLogger(__name__)


def action_values(value: float, step: float, low: float, high: float) -> list[float]:
    """``[decreased, kept, increased]`` values of one parameter, clipped to ``[low, high]``."""
    if low >= 0.0 and high <= 1.0 or value == 0.0:
        moved = [value - step, value, value + step]
    else:
        moved = [value * (1.0 - step), value, value * (1.0 + step)]
    return [min(max(v, low), high) for v in moved]


@dataclass(frozen=True)
class GreedyPlan:
    """What one controlled run steers (validated against its candidate by :meth:`build`)."""

    addresses: tuple[str, ...]
    every: int = 10
    lookahead: int = 2
    step: float = 0.1
    score: str = "soft_dice"  # or "dice" (hard)
    max_joint: int = 4

    @property
    def mode(self) -> str:
        return JOINT if len(self.addresses) <= self.max_joint else ONE_AT_A_TIME

    def to_dict(self) -> dict:
        return {
            "addresses": list(self.addresses),
            "every": self.every,
            "lookahead": self.lookahead,
            "step": self.step,
            "score": self.score,
            "max_joint": self.max_joint,
        }

    @classmethod
    def from_dict(cls, data: dict) -> GreedyPlan:
        return cls(**{**data, "addresses": tuple(data["addresses"])})

    def check(self, candidate: Candidate) -> None:
        """Raise ``ValueError`` naming the key when the plan cannot steer ``candidate``."""
        known = candidate.loss_parameters()
        if not self.addresses:
            raise ValueError(f"greedy.params: {candidate.name} has no tunable parameters")
        for address in self.addresses:
            if address not in known:
                raise ValueError(
                    f"greedy.params: {address!r} is not a parameter of {candidate.name}; "
                    f"its parameters: {', '.join(known) or '(none)'}"
                )


class GreedyController(Hook):
    """The trainer hook that steers the plan's parameters (see the module docstring).

    Args:
        plan: the parameters and the look-ahead's settings.
        objective: per-class scores (index 0 background) -> the number to maximise.
        batched: ``auto`` (batched look-ahead on CUDA only), ``on`` or ``off`` (see the module
            docstring). How the look-ahead runs is not part of the plan: it changes the scores
            by float rounding only.
    """

    def __init__(
        self,
        plan: GreedyPlan,
        objective: Callable[[Sequence[float]], float],
        *,
        batched: str = "auto",
    ):
        if batched not in BATCHED_MODES:
            raise ValueError(
                f"greedy.batched_lookahead: one of {', '.join(BATCHED_MODES)}, got {batched!r}"
            )
        self.plan = plan
        self.objective = objective
        self.batched = batched
        self.trajectory: list[tuple[int, dict[str, float]]] = []
        self.decisions: list[dict] = []
        self.nonfinite = 0
        self.batched_decisions = 0
        self.fallback: str | None = None  # why the look-ahead stopped batching in this run
        self._group: int | None = None  # combinations trained at once after out of memory

    # -- the combinations -------------------------------------------------------------------

    def combinations(self, state: TrainState) -> list[dict[str, float]]:
        """The values to try from the current ones, "keep" first, duplicates removed."""
        current = {a: state.loss_values[a] for a in self.plan.addresses}
        options = {
            a: action_values(v, self.plan.step, *state.candidate.parameter_range(a))
            for a, v in current.items()
        }
        if self.plan.mode == JOINT:
            grid = [
                dict(zip(options, values))
                for values in itertools.product(*(options[a] for a in options))
            ]
        else:
            grid = [{**current, a: options[a][i]} for a in options for i in (0, 2)]
        out, seen = [current], {tuple(current.values())}
        for values in grid:
            signature = tuple(values[a] for a in current)
            if signature not in seen:
                seen.add(signature)
                out.append(values)
        return out

    # -- the hook ---------------------------------------------------------------------------

    def on_train_start(self, state: TrainState) -> None:
        self.plan.check(state.candidate)
        self.trajectory = [(0, {a: state.loss_values[a] for a in self.plan.addresses})]
        self.decisions, self.nonfinite = [], 0
        self.batched_decisions, self.fallback, self._group = 0, None, None

    def on_step_end(self, state: TrainState) -> None:
        total = state.config.epochs * state.config.steps_per_epoch
        if state.step % self.plan.every == 0 and state.step < total:
            self.decide(state)

    def decide(self, state: TrainState) -> dict[str, float]:
        """Try every combination from the current state; set the best and return it."""
        snapshot = Snapshot.take(state)
        combinations = self.combinations(state)
        tried = self._batches(state)
        batched = self._batched_scores(state, combinations) if tried else None
        if tried:  # the random streams as they were, whether the branches trained or not
            snapshot.restore(state)
        self.batched_decisions += batched is not None
        scored: list[tuple[float, dict[str, float]]] = []
        failed: list[dict[str, float]] = []
        for i, values in enumerate(combinations):
            if batched is not None:
                score = math.nan if batched[i] is None else self._value(batched[i])
            else:
                score = self._look_ahead(state, values)
                snapshot.restore(state)
            if math.isnan(score):
                failed.append(values)
            scored.append((score, values))
        finite = [(s, i) for i, (s, _) in enumerate(scored) if not math.isnan(s)]
        best = scored[max(finite, key=lambda si: (si[0], -si[1]))[1]][1] if finite else scored[0][1]
        state.set_loss_parameters(best)
        self.nonfinite += len(failed)
        self.trajectory.append((state.step, dict(best)))
        self.decisions.append(
            {
                "step": state.step,
                "chosen": dict(best),
                "scores": [[None if math.isnan(s) else s, v] for s, v in scored],
                "nonfinite": failed,
            }
        )
        return best

    def _look_ahead(self, state: TrainState, values: dict[str, float]) -> float:
        """The objective after ``lookahead`` steps with ``values``; NaN when a step goes
        non-finite (then the scores are not computed)."""
        state.set_loss_parameters(values)
        bad = torch.zeros((), dtype=torch.bool, device=state.device)
        for _ in range(self.plan.lookahead):
            total, grad_norm = state.trainer.step(state)
            bad |= ~torch.isfinite(total.detach()) | ~torch.isfinite(grad_norm)
        if bool(bad):  # one host sync per combination, not per step
            return math.nan
        return self._value(state.trainer.patch_scores(state, self.plan.score))

    def _value(self, scores: Sequence[float]) -> float:
        """The objective of per-class scores; NaN when it is not finite."""
        value = float(self.objective(scores))
        return value if math.isfinite(value) else math.nan

    # -- the batched look-ahead -------------------------------------------------------------

    def _batches(self, state: TrainState) -> bool:
        """Whether this decision trains its combinations as one population."""
        if self.fallback is not None or self.batched == "off":
            return False
        return self.batched == "on" or state.device.type == "cuda"

    def _batched_scores(
        self, state: TrainState, combinations: list[dict[str, float]]
    ) -> list[list[float] | None] | None:
        """Per combination: its per-class scores after the look-ahead (``None``: non-finite),
        all trained as one population (in groups after out of memory); ``None`` when they
        cannot be, after logging why (then the run looks ahead one at a time)."""
        try:
            batches = draw_batches(state, self.plan.lookahead)
            scores: list[list[float] | None] = []
            while len(scores) < len(combinations):
                group = combinations[len(scores) : len(scores) + (self._group or len(combinations))]
                try:
                    scores += train_branches(
                        state, group, self.plan.lookahead, self.plan.score, batches=batches
                    )
                except torch.cuda.OutOfMemoryError:
                    if len(group) == 1:
                        raise BranchesUnsupported("out of memory with one combination") from None
                    self._group = (len(group) + 1) // 2
                    torch.cuda.empty_cache()
            return scores
        except Exception as exc:  # the one-at-a-time look-ahead says what a real error is
            self.fallback = str(exc) if isinstance(exc, BranchesUnsupported) else repr(exc)
            _log.warning(
                "greedy: the look-ahead at step %d goes one combination at a time from now on: "
                "its combinations cannot train as one population (%s)",
                state.step,
                self.fallback,
            )
            return None

    def on_train_end(self, state: TrainState | None, result: Result) -> None:
        """The trajectory as ``param/<address>`` curves, a JSON artifact and tags."""
        if not self.trajectory:
            return
        for address in self.plan.addresses:
            result.series[f"param/{address}"] = [
                [step, values[address]] for step, values in self.trajectory
            ]
        result.artifacts["greedy_trajectory.json"] = json.dumps(
            {
                "plan": self.plan.to_dict(),
                "mode": self.plan.mode,
                "trajectory": [[s, v] for s, v in self.trajectory],
                "schedule": self.schedule().get_params() if len(self.trajectory) > 1 else None,
                "nonfinite_lookaheads": self.nonfinite,
                "batched_decisions": self.batched_decisions,
                "lookahead_fallback": self.fallback,
                "decisions": self.decisions,
            },
            indent=1,
        )
        result.tags["greedy.mode"] = self.plan.mode
        result.tags["greedy.decisions"] = str(len(self.decisions))
        result.tags["greedy.nonfinite_lookaheads"] = str(self.nonfinite)
        batched = self.decisions and self.batched_decisions == len(self.decisions)
        result.tags["greedy.lookahead"] = "batched" if batched else "sequential"
        if self.fallback is not None:
            result.tags["greedy.lookahead_fallback"] = self.fallback[:250]

    def schedule(self) -> PiecewiseParams:
        """The trajectory as a replayable piecewise-constant parameter schedule.

        The start values are the candidate's own and are left out; only decisions that changed
        a value become change points.
        """
        decisions = self.trajectory[1:]
        if not decisions:
            raise ValueError("the greedy controller made no decision (a run shorter than 'every')")
        start = self.trajectory[0][1]
        full = PiecewiseParams.from_trajectory([(0, start), *decisions])
        steps, values = full.steps[1:], {a: v[1:] for a, v in full.values.items()}
        if not steps:  # nothing ever changed: the start values at the first decision
            steps, values = [decisions[0][0]], {a: [start[a]] for a in start}
        return PiecewiseParams(steps=steps, values=values)
