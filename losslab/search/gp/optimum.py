"""Where a loss's optimum lies: the correct segmentation, or something that wrecks a network.

A loss can raise the foreground Dice of free logits for a while and still be minimised by a
wrong segmentation: recall of the foreground alone is as low with every voxel called
foreground as with the truth, soft Dice written on the raw logits ``z`` falls without bound,
a Tversky index with a negative false-positive weight rewards false positives. Trained, such a
loss ends at Dice 0.00-0.04. :func:`optimum_problem` compares the loss's values at a few
predictions on the probe (forward passes only, no gradient) after the raw-logit run of the
screen (:func:`~losslab.search.gp.probe.optimise_logits`) and says what is wrong, if anything:

1. **unbounded**: along the true segmentation made ever more confident (logits ``s * y`` for
   ``s = 16, 32, 64``) the loss keeps falling by at least 3/4 of its last fall: it has no
   minimum, and a network trained with it grows its logits instead of learning.
2. **prefers its own run**: the run ended at, or passed through, a lower value than the true
   segmentation reaches, at any of the confidences ``s`` of :data:`SCALES` or as the end
   logits with each voxel's largest logit swapped onto its true class (the end's own
   confidences, argmax made right). Soft Dice written on ``z`` has a pole where ``vsum(z)``
   crosses ``-vsum(y)``: its run dives below any value of the truth and comes back.
3. **does not prefer the truth** (strictly, beyond float32 rounding) to a trivial
   prediction, each at its best confidence: one class everywhere (every background, every
   one foreground class), the uniform prediction, the truth with every background voxel given
   to one foreground class (all foreground), and the truth with every foreground voxel given
   to the first foreground class (classes merged). A loss that ties (recall of the foreground
   alone, cross-entropy of the background alone) cannot tell these from the truth either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

__all__ = ["MARGIN", "SCALES", "optimum_problem", "trivial_predictions"]

SCALES = (1.0, 3.0, 8.0, 32.0)
"""Logit scales ``s`` at which a prediction ``s * onehot`` is evaluated (``p`` of its class:
0.48 at ``s = 1`` with 4 classes, ``1 - 1e-13`` at ``s = 32``). Few, because the screen runs
for every candidate of a search: a trivial prediction evaluated at fewer scales only looks
worse than it is (the check is lenient), and the truth is also taken at the run's end."""
_RAY = (16.0, 32.0, 64.0)
# A fall along the ray at least this share of the fall before it does not shrink: unbounded.
# A bounded loss falls ever slower (CE by e^-s, a 1/s tail by half); one linear in z doubles.
_RAY_RATIO = 0.75
MARGIN = 1e-2
"""The run's values must not lie below the truth's by more than this share of the run's fall
(Adam overshoots a little; a pole or a wrong optimum dives well below)."""
# Values this close (relative to the larger) are equal: float32 noise of one forward pass. The
# truth must beat every trivial prediction by more: the degenerate losses tie with one exactly,
# while a sound loss's weakest preference is far above (GDL, whose weights all but ignore the
# largest classes: 6e-4 of a fall of 1 for the background given to the liver).
_EQUAL = 1e-5


def _onehot(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[B, *spatial]`` integer classes -> ``[B, C, *spatial]`` float one-hot."""
    out = torch.nn.functional.one_hot(classes, num_classes)
    return out.movedim(-1, 1).to(torch.float32)


def trivial_predictions(
    labels: torch.Tensor, num_classes: int
) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, one-hot ``[B, C, *spatial]``) of the trivial predictions of the module docstring."""
    for c in range(num_classes):
        name = "all background" if c == 0 else f"class {c} everywhere"
        yield name, _onehot(torch.full_like(labels, c), num_classes)
    for c in range(1, num_classes):
        filled = torch.where(labels == 0, torch.full_like(labels, c), labels)
        yield f"the truth with the background as class {c}", _onehot(filled, num_classes)
    if num_classes > 2:
        merged = torch.where(labels > 0, torch.ones_like(labels), labels)
        yield "the truth with the foreground classes merged", _onehot(merged, num_classes)


def _swap_argmax_to_truth(end: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The end logits with, at each voxel, its largest logit and its true class's swapped."""
    top = end.argmax(1, keepdim=True)
    truth = labels.unsqueeze(1)
    top_value = end.gather(1, top)
    truth_value = end.gather(1, truth)
    swapped = end.scatter(1, top, truth_value)
    return swapped.scatter(1, truth, top_value)


def optimum_problem(
    function: Callable[[torch.Tensor], torch.Tensor],
    labels: torch.Tensor,
    start: torch.Tensor,
    end: torch.Tensor,
    lowest: float = math.inf,
) -> str:
    """What is wrong with the optimum of ``function`` on the probe, or ``""`` (see the module).

    Args:
        function: ``logits [B, C, *spatial] -> scalar`` (:func:`~losslab.search.gp.probe.loss_function`).
        labels: the probe's integer labels ``[B, *spatial]``.
        start, end: the logits the raw-logit run started from and ended at.
    """
    num_classes = int(start.shape[1])

    def value(logits: torch.Tensor) -> float:
        with torch.no_grad():
            number = float(function(logits))
        return number if math.isfinite(number) else math.inf

    def best(onehot: torch.Tensor) -> float:
        return min(value(s * onehot) for s in SCALES)

    truth = _onehot(labels, num_classes)
    ray = [value(s * truth) for s in _RAY]
    falls = [ray[0] - ray[1], ray[1] - ray[2]]
    scale = max(abs(v) for v in ray) or 1.0
    if falls[1] > _EQUAL * scale and falls[1] >= _RAY_RATIO * falls[0]:
        return (
            f"unbounded below: on the true segmentation at logit scales {_RAY[0]:g}, "
            f"{_RAY[1]:g}, {_RAY[2]:g} it keeps falling ({ray[0]:.4g}, {ray[1]:.4g}, "
            f"{ray[2]:.4g})"
        )
    at_start, at_end = value(start), value(end)
    at_truth = min(best(truth), value(_swap_argmax_to_truth(end, labels)), *ray)
    fall = max(at_start - min(at_end, lowest), 0.0)
    noise = _EQUAL * max(abs(at_end), abs(at_truth)) + 1e-7 * fall
    tolerance = MARGIN * fall + noise
    if at_end < at_truth - tolerance:
        return (
            f"prefers where its raw-logit run ended ({at_end:.4g}) to the true segmentation "
            f"({at_truth:.4g})"
        )
    if lowest < at_truth - tolerance:
        return (
            f"prefers a point of its raw-logit run ({lowest:.4g}) to the true segmentation "
            f"({at_truth:.4g})"
        )
    for name, onehot in trivial_predictions(labels, num_classes):
        other = best(onehot)
        if not other > at_truth + noise:
            return f"does not prefer the true segmentation ({at_truth:.4g}) to {name} ({other:.4g})"
    uniform = value(torch.zeros_like(start))
    if not uniform > at_truth + noise:
        return (
            f"does not prefer the true segmentation ({at_truth:.4g}) to the uniform "
            f"prediction ({uniform:.4g})"
        )
    return ""
