"""Per-class segmentation metrics: Dice, IoU, sensitivity, precision (from a confusion matrix on the
device) and HD95 (MONAI's definition, one class bounding box at a time).

A class absent from a case's reference is excluded from that case (NaN), never counted as 0 or 1;
means over cases ignore NaN. Li et al. (2021) report DSC, SEN, PRC and HD: so do we.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import binary_erosion, distance_transform_edt

__all__ = ["METRICS", "class_boxes", "confusion_matrix", "hd95_per_class", "overlap_metrics"]

METRICS = ("dice", "iou", "sensitivity", "precision", "hd95")


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[C, C]`` counts, rows the reference class, columns the predicted class.

    Args:
        pred, target: integer label maps of the same shape, on any device.
    """
    index = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def overlap_metrics(confusion: torch.Tensor) -> dict[str, torch.Tensor]:
    """Dice, IoU, sensitivity and precision per class ``[C]`` from one case's confusion matrix.

    NaN where the class is absent from the reference (all four), so that it is excluded.
    """
    confusion = confusion.double()
    tp = confusion.diagonal()
    reference = confusion.sum(1)
    predicted = confusion.sum(0)
    present = reference > 0
    nan = torch.full_like(tp, math.nan)
    dice = torch.where(present, 2 * tp / (reference + predicted).clamp_min(1), nan)
    iou = torch.where(present, tp / (reference + predicted - tp).clamp_min(1), nan)
    sensitivity = torch.where(present, tp / reference.clamp_min(1), nan)
    precision = torch.where(present, tp / predicted.clamp_min(1), nan)
    return {"dice": dice, "iou": iou, "sensitivity": sensitivity, "precision": precision}


def class_boxes(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Bounding box of every class of a label map, int64 ``[C, 3, 2]`` on the CPU.

    ``[c, axis] = (first, last + 1)`` voxel along each axis; ``(0, 0)`` where class ``c`` is
    absent. One ``bincount`` per axis of ``label * n + coordinate``, so the cost is three passes
    over the volume whatever the number of classes.

    Args:
        label: integer label map ``[D, H, W]``, on any device.
    """
    out = torch.zeros(num_classes, 3, 2, dtype=torch.int64)
    label = label.long()
    for axis, n in enumerate(label.shape):
        view = [1, 1, 1]
        view[axis] = n
        coordinate = torch.arange(n, device=label.device).view(view)
        index = (label * n + coordinate).reshape(-1)
        seen = (torch.bincount(index, minlength=num_classes * n)[: num_classes * n] > 0).cpu()
        seen = seen.reshape(num_classes, n)
        present = seen.any(1)
        first = seen.int().argmax(1)
        last = n - 1 - seen.flip(1).int().argmax(1)
        out[:, axis, 0] = torch.where(present, first, 0)
        out[:, axis, 1] = torch.where(present, last + 1, 0)
    return out


def _edges(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a boolean mask: the mask minus its erosion (as MONAI finds them)."""
    return mask ^ binary_erosion(mask)


def _directed_hd95(edges_from: np.ndarray, edges_to: np.ndarray, spacing) -> float:
    """95th percentile of the distances (mm) from each voxel of ``edges_from`` to ``edges_to``."""
    distance = distance_transform_edt(~edges_to, sampling=spacing)
    return float(np.percentile(distance[edges_from], 95))


def hd95_per_class(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    spacing: tuple[float, ...] | None = None,
) -> torch.Tensor:
    """95th-percentile Hausdorff distance per class ``[C]`` in mm, background NaN.

    The same number as MONAI's ``compute_hausdorff_distance(percentile=95)`` (surface voxels by
    binary erosion, exact Euclidean distances scaled by ``spacing``, the larger of the two
    directed 95th percentiles), computed one class at a time on the class's bounding box (the
    union of the predicted and reference boxes, padded by one voxel and clipped to the volume)
    with boolean masks: memory is bounded by the largest organ, not by classes x volume.

    NaN where the class is absent from the reference. Where it is present but not predicted the
    distance is undefined; it is set to the diagonal of the volume, the largest possible.

    Args:
        pred, target: integer label maps ``[D, H, W]`` on any device (the boxes are cut there
            and copied to the CPU).
        spacing: the case's voxel size in mm (1 along each axis when None).
    """
    shape = tuple(target.shape)
    spacing = tuple(float(s) for s in spacing) if spacing else (1.0,) * len(shape)
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))
    out = torch.full((num_classes,), math.nan, dtype=torch.float64)
    ref_boxes, pred_boxes = class_boxes(target, num_classes), class_boxes(pred, num_classes)
    ref_present = (ref_boxes[:, :, 1] > 0).all(1)
    pred_present = (pred_boxes[:, :, 1] > 0).all(1)
    for c in range(1, num_classes):
        if not ref_present[c]:
            continue
        if not pred_present[c]:
            out[c] = diagonal
            continue
        low = torch.minimum(ref_boxes[c, :, 0], pred_boxes[c, :, 0]) - 1
        high = torch.maximum(ref_boxes[c, :, 1], pred_boxes[c, :, 1]) + 1
        box = tuple(
            slice(max(lo, 0), min(hi, n)) for lo, hi, n in zip(low.tolist(), high.tolist(), shape)
        )
        edges_pred = _edges((pred[box] == c).cpu().numpy())
        edges_ref = _edges((target[box] == c).cpu().numpy())
        out[c] = max(
            _directed_hd95(edges_pred, edges_ref, spacing),
            _directed_hd95(edges_ref, edges_pred, spacing),
        )
    return out
