"""Sliding-window inference and per-class scoring of a split."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from monai.inferers import sliding_window_inference

from losslab.training.metrics import confusion_matrix, hd95_per_class, overlap_metrics

__all__ = ["LOGIT_EDGES", "PREDICTED", "SplitDetails", "evaluate_split"]

LOGIT_EDGES = torch.linspace(-20.0, 20.0, 81)  # margins beyond +-20 land in the end bins
PREDICTED = "predicted_voxels"  # Result.test_cases key: voxels predicted as each class, per case


@dataclass
class SplitDetails:
    """What :func:`evaluate_split` can collect besides the means: the per-case values (paired
    comparisons pair by case; ``per_case[PREDICTED]``: the voxels predicted as each class) and, per foreground class, histograms of its logit margin (its
    logit minus the largest other one; > 0 where it is predicted) at its own voxels
    (``foreground``) and at all others (``background``), as in Li et al.'s analysis of under-
    and over-segmentation."""

    per_case: dict[str, list[list[float]]] = field(default_factory=dict)
    counts: torch.Tensor | None = None  # [C, 2, bins]: background, foreground (row 0 unused)
    predicted: list[torch.Tensor] = field(default_factory=list)  # per case: voxels per class

    def add_logits(self, logits: torch.Tensor, label: torch.Tensor) -> None:
        """Accumulate the margin histograms of one case (``logits`` ``[C, D, H, W]``), on the
        logits' device: one ``bincount`` per class, read back once by :meth:`histograms`."""
        logits = logits.float()
        classes = logits.shape[0]
        bins = len(LOGIT_EDGES) - 1
        if self.counts is None:
            self.counts = torch.zeros(classes, 2, bins, dtype=torch.long, device=logits.device)
        top2 = logits.topk(min(2, classes), dim=0).values
        edges = LOGIT_EDGES.to(logits.device)
        for c in range(1, classes):
            best_other = torch.where(logits[c] >= top2[0], top2[-1], top2[0])
            margin = (logits[c] - best_other).clamp(edges[0], edges[-1])
            index = torch.bucketize(margin, edges[1:-1]) + bins * (label == c)
            self.counts[c] += torch.bincount(index.flatten(), minlength=2 * bins).view(2, bins)

    def histograms(self, class_names: Sequence[str]) -> dict[str, dict[str, list[float]]]:
        """``Result.logit_hist``: class name -> edges and the two histograms."""
        if self.counts is None:
            return {}
        edges = LOGIT_EDGES.tolist()
        counts = self.counts.double().cpu().tolist()
        return {
            class_names[c]: {
                "edges": edges,
                "foreground": counts[c][1],
                "background": counts[c][0],
            }
            for c in range(1, len(class_names))
        }


def _pad_value(image: torch.Tensor, patch_size: tuple[int, int, int]) -> float:
    """The case's minimum when ``image [1, D, H, W]`` needs padding to the patch, else 0 (unused;
    reading the minimum back would cost a host sync for nothing)."""
    if all(n >= p for n, p in zip(image.shape[1:], patch_size)):
        return 0.0
    return float(image.min())


def _case_spacings(
    spacing: Sequence[float] | Sequence[Sequence[float]] | None, cases: int
) -> list[tuple[float, ...] | None]:
    """One spacing per case from one per case, one for all, or None."""
    if spacing is None or len(spacing) == 0:
        return [None] * cases
    if isinstance(spacing[0], (int, float)):
        return [tuple(float(s) for s in spacing)] * cases  # type: ignore[union-attr]
    if len(spacing) != cases:
        raise ValueError(f"{len(spacing)} spacings for {cases} cases")
    return [tuple(float(s) for s in case) for case in spacing]  # type: ignore[union-attr]


@torch.no_grad()
def evaluate_split(
    model: torch.nn.Module,
    images: list[torch.Tensor],
    labels: list[torch.Tensor],
    num_classes: int,
    *,
    patch_size: tuple[int, int, int],
    sw_batch_size: int = 4,
    overlap: float = 0.25,
    amp_dtype: torch.dtype | None = None,
    metrics: tuple[str, ...] = ("dice",),
    spacing: Sequence[float] | Sequence[Sequence[float]] | None = None,
    details: SplitDetails | None = None,
) -> dict[str, list[float]]:
    """Per-class metrics averaged over cases, a class absent from a case excluded from it.

    A case smaller than ``patch_size`` is padded, centred, with its own minimum intensity, as
    :class:`losslab.data.PatchSampler` pads it for training (choice: after normalisation the
    minimum is the air / outside-the-body value for CT windows and whole-image z-scores, while
    0, MONAI's default, would be average tissue after a z-score), so the network sees the same
    border in validation as in training.

    Args:
        images: each ``[1, D, H, W]`` on the model's device; labels: each ``[D, H, W]``.
        metrics: any of ``dice``, ``iou``, ``sensitivity``, ``precision``, ``hd95``.
        spacing: voxel size in mm for HD95: one per case (a list of triples), or one for all
            cases, or None (1 mm).
        details: when given, filled with the per-case values and the logit-margin histograms.

    Returns:
        metric -> ``[C]`` floats (NaN for a class absent from every case).
    """
    spacings = _case_spacings(spacing, len(images))
    was_training = model.training
    model.eval()
    per_case: dict[str, list[torch.Tensor]] = {m: [] for m in metrics}
    device_type = images[0].device.type if images else "cpu"
    try:
        for image, label, case_spacing in zip(images, labels, spacings):
            with torch.autocast(
                device_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
            ):
                logits = sliding_window_inference(
                    image[None],
                    patch_size,
                    sw_batch_size,
                    model,
                    overlap=overlap,
                    cval=_pad_value(image, patch_size),
                )
            pred = logits.argmax(1)[0]
            if details is not None:
                details.add_logits(logits[0], label)
            confusion = confusion_matrix(pred, label, num_classes)
            overlap_values = overlap_metrics(confusion)
            if details is not None:  # a class never predicted has no HD95 (console.py says so)
                details.predicted.append(confusion.sum(0).cpu())
            for metric in metrics:
                if metric == "hd95":
                    per_case[metric].append(hd95_per_class(pred, label, num_classes, case_spacing))
                else:
                    per_case[metric].append(overlap_values[metric].cpu())
    finally:
        model.train(was_training)
    out = {}
    for metric, values in per_case.items():
        rows = torch.stack(values) if values else torch.full((0, num_classes), math.nan)
        out[metric] = rows.nanmean(0).tolist() if values else [math.nan] * num_classes
        if details is not None:
            details.per_case[metric] = rows.tolist()
    if details is not None and details.predicted:
        details.per_case[PREDICTED] = torch.stack(details.predicted).double().tolist()
    return out
