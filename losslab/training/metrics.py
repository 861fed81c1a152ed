"""Per-class segmentation metrics: Dice, IoU, sensitivity, precision (from a confusion matrix on the
device) and HD95 (MONAI).

A class absent from a case's reference is excluded from that case (NaN), never counted as 0 or 1;
means over cases ignore NaN. Li et al. (paper 004) report DSC, SEN, PRC and HD: so do we.
"""

from __future__ import annotations

import math
import warnings

import torch

__all__ = ["METRICS", "confusion_matrix", "hd95_per_class", "overlap_metrics"]

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


def hd95_per_class(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    spacing: tuple[float, ...] | None = None,
) -> torch.Tensor:
    """95th-percentile Hausdorff distance per class ``[C]`` in mm (MONAI), background NaN.

    NaN where the class is absent from the reference. Where it is present but not predicted the
    distance is undefined; it is set to the diagonal of the volume, the largest possible.
    """
    from monai.metrics import compute_hausdorff_distance

    shape = target.shape
    onehot_pred = torch.nn.functional.one_hot(pred.long(), num_classes).movedim(-1, 0)[None]
    onehot_ref = torch.nn.functional.one_hot(target.long(), num_classes).movedim(-1, 0)[None]
    spacing = spacing or (1.0,) * len(shape)
    diagonal = math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing)))
    out = torch.full((num_classes,), math.nan, dtype=torch.float64)
    ref_present = onehot_ref.flatten(2).any(-1)[0].cpu()
    pred_present = onehot_pred.flatten(2).any(-1)[0].cpu()
    both = [c for c in range(1, num_classes) if ref_present[c] and pred_present[c]]
    if both:
        with warnings.catch_warnings():  # MONAI warns about its own internal deprecations
            warnings.simplefilter("ignore", FutureWarning)
            distances = compute_hausdorff_distance(
                onehot_pred[:, both],
                onehot_ref[:, both],
                include_background=True,
                percentile=95,
                spacing=list(spacing),
            )[0]
        out[both] = distances.double().cpu()
    for c in range(1, num_classes):
        if ref_present[c] and not pred_present[c]:
            out[c] = diagonal
    return out
