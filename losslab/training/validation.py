"""Cheap per-epoch validation: a fixed set of patches per validation case.

A sliding-window pass over a real CT volume costs tens of seconds on a CPU, and the class
schedules read the validation Dice after every epoch. ``TrainConfig(validation="patches")``
scores a fixed set of crops instead: ``val_patches_per_class`` crops centred on voxels of each
class present in each validation case (background included, so some background is seen), drawn
once from the run's seed so that every epoch scores the same voxels. The final test metrics
always come from the full sliding window (:func:`losslab.training.inference.evaluate_split`).

The per-class Dice pools the counts of all the patches of a split (intersections and sums, one
confusion matrix), rather than averaging per-patch Dice: a patch that holds a few voxels of a
class weighs as little as it should. A voxel inside two overlapping patches counts twice; a
class absent from every patch's reference is NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from losslab.training.metrics import overlap_metrics

__all__ = ["ValidationPatch", "choose_validation_patches", "evaluate_patches"]

_IGNORE = -1  # label of the voxels a patch adds outside a case smaller than the patch


class ValidationPatch(NamedTuple):
    """One crop: ``case`` indexes the split's cases; ``origin`` is the crop's first voxel.

    Along an axis where the case is smaller than the patch the origin is negative: the case is
    padded, centred, as :class:`losslab.data.PatchSampler` pads it for training.
    """

    case: int
    origin: tuple[int, int, int]


def _origin(centre: Sequence[int], shape: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    """The corner of the crop centred on ``centre``, shifted inside the case (or centred on a
    case smaller than the patch)."""
    return tuple(
        min(max(x - p // 2, 0), n - p) if n >= p else -((p - n) // 2)
        for x, n, p in zip(centre, shape, patch)
    )


def choose_validation_patches(
    labels: Sequence[torch.Tensor],
    num_classes: int,
    patch_size: Sequence[int],
    per_class: int,
    seed: int,
) -> list[ValidationPatch]:
    """Crops centred on ``per_class`` voxels of every class present in every case.

    The centres are drawn uniformly among the class's voxels by a CPU ``torch.Generator``
    seeded with ``seed``, so the set depends on the seed and the labels only (not on the device).
    Identical crops of a case are kept once.

    Args:
        labels: integer label maps ``[D, H, W]``, one per case (any device).
        patch_size: ``(Pd, Ph, Pw)``.
        per_class: crops per class and case.

    Returns:
        The patches, case by case, class by class.
    """
    generator = torch.Generator().manual_seed(seed)
    patches: list[ValidationPatch] = []
    for case, label in enumerate(labels):
        label = label.cpu()
        shape = tuple(label.shape)
        flat = label.reshape(-1)
        counts = torch.bincount(flat.long(), minlength=num_classes)
        seen: set[tuple[int, ...]] = set()
        for c in range(num_classes):
            if counts[c] == 0:
                continue
            voxels = (flat == c).nonzero()[:, 0]
            picks = voxels[torch.randint(len(voxels), (per_class,), generator=generator)]
            for index in picks.tolist():
                h, w = shape[1], shape[2]
                centre = (index // (h * w), (index // w) % h, index % w)
                origin = _origin(centre, shape, patch_size)
                if origin not in seen:
                    seen.add(origin)
                    patches.append(ValidationPatch(case, origin))  # type: ignore[arg-type]
    return patches


def _crop(
    image: torch.Tensor, label: torch.Tensor, origin: Sequence[int], patch: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image [1, *patch], label [*patch])``, padded where the crop leaves the case (image with
    the case's minimum, label with ``_IGNORE``)."""
    shape = label.shape
    box = tuple(slice(max(o, 0), min(o + p, n)) for o, p, n in zip(origin, patch, shape))
    image, label = image[(slice(None), *box)], label[box]
    pad: list[int] = []
    for o, p, n in zip(reversed(origin), reversed(patch), reversed(shape)):
        pad += [max(-o, 0), max(o + p - n, 0)]
    if any(pad):
        image = F.pad(image[None], pad, value=float(image.min()))[0]
        label = F.pad(label[None, None], pad, value=_IGNORE)[0, 0]
    return image, label


@torch.no_grad()
def evaluate_patches(
    model: torch.nn.Module,
    images: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    num_classes: int,
    patches: Sequence[ValidationPatch],
    *,
    patch_size: Sequence[int],
    batch_size: int = 4,
    amp_dtype: torch.dtype | None = None,
    metrics: tuple[str, ...] = ("dice",),
) -> dict[str, list[float]]:
    """Per-class overlap metrics of the model on fixed patches, counts pooled over all patches.

    Args:
        images: each ``[1, D, H, W]`` on the model's device; labels: each ``[D, H, W]``.
        patches: from :func:`choose_validation_patches` (``case`` indexes these lists).
        batch_size: patches per forward pass.
        metrics: any of ``dice``, ``iou``, ``sensitivity``, ``precision``, and ``soft_dice``:
            ``2 sum(p y) / (sum p + sum y)`` of the softmax, pooled over the patches' voxels
            (smooth where the hard Dice is a step: a look-ahead of a few steps moves it).

    Returns:
        metric -> ``[C]`` floats, NaN for a class absent from every patch.
    """
    device = images[0].device if images else torch.device("cpu")
    bins = num_classes * num_classes
    counts = torch.zeros(bins + 1, dtype=torch.int64, device=device)
    soft = torch.zeros(3, num_classes, dtype=torch.float64, device=device)  # sum py, sum p, sum y
    want_soft = "soft_dice" in metrics
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(patches), batch_size):
            crops = [
                _crop(images[p.case], labels[p.case], p.origin, patch_size)
                for p in patches[start : start + batch_size]
            ]
            batch = torch.stack([image for image, _ in crops])
            target = torch.stack([label for _, label in crops]).long()
            with torch.autocast(
                device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
            ):
                logits = model(batch)
            pred = logits.argmax(1)
            if want_soft:
                valid = (target >= 0).unsqueeze(1)
                probs = torch.softmax(logits.float(), dim=1) * valid
                onehot = F.one_hot(target.clamp_min(0), num_classes).movedim(-1, 1) * valid
                dims = [0, *range(2, probs.dim())]
                soft[0] += (probs * onehot).sum(dims).double()
                soft[1] += probs.sum(dims).double()
                soft[2] += onehot.sum(dims).double()
            index = torch.where(target >= 0, target * num_classes + pred, bins)
            counts += torch.bincount(index.reshape(-1), minlength=bins + 1)
    finally:
        model.train(was_training)
    values = overlap_metrics(counts[:bins].reshape(num_classes, num_classes))
    if want_soft:  # NaN for a class absent from every patch's reference, as the hard Dice
        values["soft_dice"] = torch.where(
            soft[2] > 0, 2 * soft[0] / (soft[1] + soft[2]).clamp_min(1e-12), float("nan")
        )
    return {metric: values[metric].tolist() for metric in metrics}
