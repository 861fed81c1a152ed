"""Screen candidate losses on a probe batch before a network is trained with them.

A genetic-programming search proposes many loss expressions, most of them useless; training each
one costs minutes, screening it well under a second. :class:`LossScreen` applies the stages of
:data:`STAGES` in order and stops at the first one that rejects the loss:

1. ``invalid``: the text or tree does not parse or type-check.
2. ``duplicate``: its canonical text (``str(spec)``, parameters bound) passed this screen before.
3. ``terminals``: it does not use both a target terminal (``y`` or ``dist``, the distance maps
   being derived from the target; ``fg`` is not the target) and a prediction terminal (``p``,
   ``logp`` or ``z``) outside the conditions of ``where``, which carry no gradient.
4. ``degenerate``: on the probe its value or its gradient with respect to the logits is not
   finite, its value is the same at three different logits (a constant), or its gradient at
   the starting logits is zero.
5. ``no_improvement``: optimising the probe's raw logits with it (:func:`raw_logit_dice`) does
   not raise the foreground Dice by at least ``min_gain``.
6. ``wrong_optimum``: the run does not end at a foreground Dice of ``min_end`` or more, or the
   loss's optimum is not the true segmentation (:func:`~losslab.search.gp.optimum.optimum_problem`):
   it is unbounded below along the truth made more confident, it prefers where its run went to
   the truth, or it does not strictly prefer the truth to a trivial prediction (one class
   everywhere, all foreground, classes merged, uniform). Raising the Dice is not enough: a
   loss that recalls the foreground alone gains +0.2 and trains a network to call every voxel
   foreground.
7. ``gradient_duplicate``: its gradients at two probe points have the same direction as those of
   a loss that passed before (a positive multiple of it, plus a constant, or the same loss
   written otherwise), so training would follow the same path; the verdict names that loss
   (``same_as``) so that its fitness can be reused. Equal gradients at two points are strong
   evidence, not a proof, of equal losses.

A loss rejected once is rejected again from a cache of its canonical text, without evaluating
it (the screen is deterministic), and its verdict is the same as the first time.
"""

from __future__ import annotations

import collections
import hashlib
import math

import numpy as np
import torch

from losslab.losses import CompoundLoss, LossSpec, has_gradient_path, parse_loss
from losslab.losses.nodes import Var, iter_nodes
from losslab.search.gp.optimum import optimum_problem
from losslab.search.gp.probe import (
    DEFAULT_LR,
    DEFAULT_STEPS,
    Probe,
    loss_function,
    optimise_logits,
    single_thread,
)
from losslab.search.gp.screen_state import ScreenState
from losslab.search.gp.verdict import Verdict

__all__ = ["MIN_END", "MIN_GAIN", "STAGES", "LossScreen", "Verdict"]

STAGES = (
    "invalid",
    "duplicate",
    "terminals",
    "degenerate",
    "no_improvement",
    "wrong_optimum",
    "gradient_duplicate",
)

# Foreground Dice (absolute) the raw-logit run must gain. The single-term library losses gain
# 0.93-0.98 on the default probes, except boundary (its distance maps are zero on the boundary
# voxels, so thin organs are never pushed): 0.22-0.75 over many probes. Losses that reward false
# positives, minimise the overlap or push the target logits down lose Dice (negative gain), and
# the best of the degenerate losses of the tests gains below 0.01. 0.05 sits about four times
# away from both.
MIN_GAIN = 0.05
# Foreground Dice the raw-logit run must end at. Gain alone is not enough: a loss as low for
# every voxel called foreground as for the truth ends at 0.23-0.29 from a start near 0.05, soft
# Dice on the raw logits at 0.08-0.33. Every sound library loss ends at 1.000 on the default
# probes, except boundary (thin organs are never pushed, see above): 0.43-0.88 over 32 probes
# (synthetic with 2-8 classes, phantom patches), 0.33 on the worst of them after 10 steps (the
# fewest gp.screen_steps allows). The optimum tests catch both degenerate kinds without it.
MIN_END = 0.3
# Two values whose difference is below this fraction of the larger are the same value: ten times
# the float32 rounding measured on losses that are constant in exact arithmetic (csum(vsum(p)),
# whose gradient is pure rounding noise of norm up to 0.1 and so escapes the zero-gradient test),
# far below any change a real loss shows between different logits. Relative, so that a loss
# scaled down (1e-6 * ce) is not constant; an offset swamping the loss (1 + 1e-7 * ce) is.
CONSTANT_TOLERANCE = 1e-6
# A gradient at the starting logits with a smaller L2 norm is zero. Adam cannot follow a gradient
# much below its eps (1e-8 per element); every sound loss is orders of magnitude above this on
# a probe, and one that starts flat (clamp(p, 0.9, 1)) cannot leave near-uniform predictions.
ZERO_GRADIENT = 1e-9
# Gradients are compared through a count sketch (a fixed random bucket and sign per element),
# SKETCH_BUCKETS buckets per probe point: small enough to keep for every passed loss and to store
# in JSON, large enough that different directions stay apart.
SKETCH_BUCKETS = 128
# The hash is taken of the sketch rounded to this many decimals (about 3 significant digits).
HASH_DECIMALS = 4
# Two sketches nearer than this (L2, both of unit norm) are the same direction. Rounding on a
# hash boundary can split equal gradients, so the hash is looked up first and this nearest-
# neighbour test second.
MATCH_TOLERANCE = 1e-3
# Besides the probe's start, a loss is evaluated at noisy logits biased towards the target, so that
# probabilities spread over (0, 1) and losses that agree near the uniform start (focal and CE)
# come apart; the gradients at these two points are its fingerprint. A third point, confident
# and nearly right, only guards the constant test against a chance equality of two values (GDL
# on a probe whose rarest class has two voxels is 1 - tiny at both of the first two).
_SPREAD_NOISE, _SPREAD_BIAS, _SHARP_NOISE, _SHARP_BIAS, _POINTS_SEED = 2.0, 2.0, 0.5, 6.0, 1
_TARGETS = frozenset({"y", "dist"})
_PREDICTIONS = frozenset({"p", "logp", "z"})


class LossScreen(ScreenState):
    """The stages of :data:`STAGES` on one probe, with the memory of what passed (saved and
    restored by :class:`~losslab.search.gp.screen_state.ScreenState`'s methods).

    Args:
        probe: the batch every loss is evaluated on.
        steps: Adam steps of the raw-logit run (stage ``no_improvement``).
        lr: Adam learning rate of that run.
        min_gain: foreground Dice the run must gain (absolute).
        min_end: foreground Dice the run must end at (stage ``wrong_optimum``).

    Attributes:
        counts: verdicts per stage, and ``"passed"``.
    """

    def __init__(
        self,
        probe: Probe,
        *,
        steps: int = DEFAULT_STEPS,
        lr: float = DEFAULT_LR,
        min_gain: float = MIN_GAIN,
        min_end: float = MIN_END,
    ):
        self.probe = probe
        self.steps, self.lr, self.min_gain = int(steps), float(lr), float(min_gain)
        self.min_end = float(min_end)
        self.counts: collections.Counter = collections.Counter()
        self._passed: dict[str, str] = {}  # canonical text -> gradient hash
        self._by_hash: dict[str, str] = {}  # gradient hash -> first canonical text
        self._texts: list[str] = []  # passed texts, in the order of the sketch rows
        self._sketches = np.zeros((0, 2 * SKETCH_BUCKETS), dtype=np.float32)
        self._rejected: dict[str, Verdict] = {}
        generator = torch.Generator().manual_seed(_POINTS_SEED)
        onehot = torch.zeros_like(probe.logits).scatter_(1, probe.labels.unsqueeze(1), 1.0)
        noise = torch.randn((2, *probe.logits.shape), generator=generator)
        self._points = (
            probe.logits,
            _SPREAD_NOISE * noise[0] + _SPREAD_BIAS * onehot,
            _SHARP_NOISE * noise[1] + _SHARP_BIAS * onehot,
        )
        rng = np.random.default_rng(0)
        size = probe.logits.numel()
        buckets = rng.integers(0, SKETCH_BUCKETS, 2 * size)
        buckets[size:] += SKETCH_BUCKETS
        self._buckets = torch.from_numpy(buckets)
        self._signs = torch.from_numpy(rng.choice([-1.0, 1.0], 2 * size))

    def seen(self, canonical: str) -> bool:
        """Whether a loss with this canonical text passed this screen."""
        if canonical in self._passed:
            return True
        try:
            return str(parse_loss(canonical)) in self._passed
        except Exception:  # not a loss text: not seen
            return False

    def check(self, loss: str | LossSpec | object) -> Verdict:
        """Screen a loss text, a :class:`LossSpec` or a bare tree (a node of the language).

        Never raises: any error becomes a verdict. A loss that passes is recorded (its text and
        gradient hash), so that a later duplicate of it is reported. Runs on the CPU, on one
        thread (:func:`~losslab.search.gp.probe.single_thread`).
        """
        try:
            with single_thread():
                verdict = self._check(loss)
        except Exception as error:  # a check never raises
            verdict = Verdict("degenerate", f"the check failed: {_describe(error)}")
        self.counts[verdict.stage or "passed"] += 1
        return verdict

    def _check(self, loss) -> Verdict:
        try:
            spec = _as_spec(loss)
            canonical = str(spec)
        except Exception as error:  # LossSyntaxError, ValueError, and worse
            return Verdict("invalid", _describe(error))
        if canonical in self._passed:
            return Verdict(
                "duplicate",
                "the same loss (same canonical text) passed before",
                spec,
                same_as=canonical,
                gradient_hash=self._passed[canonical],
            )
        if canonical in self._rejected:
            return self._rejected[canonical]
        verdict, sketch = self._screen(spec)
        if verdict.passed:
            self._record(canonical, verdict.gradient_hash, sketch)
        else:
            self._rejected[canonical] = verdict
        return verdict

    def _screen(self, spec: LossSpec) -> tuple[Verdict, np.ndarray | None]:
        """Stages 3 to 6; the sketch of the gradient goes with a verdict that passed."""
        problem = _terminal_problem(spec)
        if problem:
            return Verdict("terminals", problem, spec), None
        try:
            function = loss_function(spec, self.probe.labels)
            gradients, problem = self._gradients(function)
            if problem:
                return Verdict("degenerate", problem, spec), None
            run = optimise_logits(function, self.probe, steps=self.steps, lr=self.lr)
        except Exception as error:  # torch errors of a searched expression
            return Verdict("degenerate", f"evaluation failed: {_describe(error)}", spec), None
        if run.failure:
            return Verdict("degenerate", f"raw-logit run failed: {run.failure}", spec), None
        if not run.gain >= self.min_gain:
            verdict = Verdict(
                "no_improvement",
                f"raw-logit Dice {run.start:.3f} -> {run.end:.3f} (gain {run.gain:+.3f}, "
                f"needs {self.min_gain:+.3f})",
                spec,
                gain=run.gain,
            )
            return verdict, None
        problem = self._optimum_problem(function, run)
        if problem:
            return Verdict("wrong_optimum", problem, spec, gain=run.gain), None
        sketch, digest = self._fingerprint(gradients)
        earlier = self._match(sketch, digest)
        if earlier:
            verdict = Verdict(
                "gradient_duplicate",
                f"same gradient direction on the probe as '{earlier}'",
                spec,
                same_as=earlier,
                gradient_hash=digest,
                gain=run.gain,
            )
            return verdict, None
        reason = f"raw-logit Dice {run.start:.3f} -> {run.end:.3f} (gain {run.gain:+.3f})"
        return Verdict(None, reason, spec, gradient_hash=digest, gain=run.gain), sketch

    def _optimum_problem(self, function, run) -> str:
        """Stage ``wrong_optimum``: the run must end high, and the truth be the optimum."""
        if not run.end >= self.min_end:
            return (
                f"raw-logit Dice {run.start:.3f} -> {run.end:.3f}: raised, but it ends below "
                f"{self.min_end:.2f}"
            )
        return optimum_problem(
            function, self.probe.labels, self.probe.logits, run.logits, run.lowest
        )

    def _gradients(self, function) -> tuple[list[torch.Tensor], str]:
        """The gradients at the probe points, or the reason the loss is degenerate."""
        values, gradients = [], []
        for point in self._points:
            logits = point.detach().clone().requires_grad_(True)
            value = function(logits)
            number = float(value.detach())
            if not math.isfinite(number):
                return [], f"non-finite value {number} on the probe"
            gradient = None
            if value.requires_grad:
                (gradient,) = torch.autograd.grad(value, logits, allow_unused=True)
            gradient = torch.zeros_like(logits) if gradient is None else gradient.detach()
            if not bool(torch.isfinite(gradient).all()):
                return [], "non-finite gradient on the probe"
            values.append(number)
            gradients.append(gradient)
        if max(values) - min(values) <= CONSTANT_TOLERANCE * max(map(abs, values)):
            return [], f"constant: the same value {values[0]:.6g} at three different logits"
        norm = float(gradients[0].norm())
        if norm < ZERO_GRADIENT:
            return [], f"zero gradient at the starting logits (norm {norm:.2e})"
        return gradients, ""

    def _fingerprint(self, gradients: list[torch.Tensor]) -> tuple[np.ndarray, str]:
        """Count sketch of the first two gradients over their joint L2 norm, and its rounded sha256.

        One norm for both points: a loss times a positive constant (or plus a constant) has the
        same fingerprint, which is exact equivalence for Adam up to its eps; a monotone but
        non-linear transform (``log(dice)``) scales the two points differently and stays
        distinct. A negative multiple points the other way and is distinct too.
        """
        flat = torch.cat([g.reshape(-1) for g in gradients[:2]]).double()
        flat = flat / flat.norm()
        sketch = torch.zeros(2 * SKETCH_BUCKETS, dtype=torch.float64)
        sketch.index_add_(0, self._buckets, flat * self._signs)
        sketch = sketch.numpy()
        rounded = np.round(sketch, HASH_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0
        digest = hashlib.sha256(rounded.astype("<f8").tobytes()).hexdigest()
        return sketch.astype(np.float32), digest

    def _match(self, sketch: np.ndarray, digest: str) -> str:
        if digest in self._by_hash:
            return self._by_hash[digest]
        if not self._texts:
            return ""
        distances = np.linalg.norm(self._sketches - sketch, axis=1)
        nearest = int(np.argmin(distances))
        return self._texts[nearest] if distances[nearest] < MATCH_TOLERANCE else ""

    def _record(self, canonical: str, digest: str, sketch: np.ndarray) -> None:
        self._passed[canonical] = digest
        self._by_hash.setdefault(digest, canonical)
        self._texts.append(canonical)
        self._sketches = np.vstack([self._sketches, sketch[None].astype(np.float32)])


def _as_spec(loss) -> LossSpec:
    if isinstance(loss, LossSpec):
        _ = loss.kind  # type-checks a spec built around an unchecked tree
        return loss
    if isinstance(loss, str):
        return parse_loss(loss)
    if isinstance(loss, CompoundLoss):
        raise ValueError(f"'{loss.name}' is a compound loss: screen each of its terms")
    return LossSpec.from_tree(loss)


def _terminal_problem(spec: LossSpec) -> str:
    names = {node.name for node in iter_nodes(spec.tree) if isinstance(node, Var)}
    if not names & _TARGETS:
        return "uses no target terminal (y or dist)"
    if not has_gradient_path(spec.tree):
        if names & _PREDICTIONS:
            return (
                "uses the predictions (p, logp, z) only in conditions of where, "
                "which carry no gradient"
            )
        return "uses no prediction terminal (p, logp or z)"
    return ""


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
