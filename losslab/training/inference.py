"""Sliding-window inference and per-class scoring of a split."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.inferers import sliding_window_inference

from losslab.training.metrics import confusion_matrix, hd95_per_class, overlap_metrics

__all__ = ["evaluate_split"]


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
            overlap_values = overlap_metrics(confusion_matrix(pred, label, num_classes))
            for metric in metrics:
                if metric == "hd95":
                    per_case[metric].append(hd95_per_class(pred, label, num_classes, case_spacing))
                else:
                    per_case[metric].append(overlap_values[metric].cpu())
    finally:
        model.train(was_training)
    out = {}
    for metric, values in per_case.items():
        if values:
            out[metric] = torch.stack(values).nanmean(0).tolist()
        else:
            out[metric] = [math.nan] * num_classes
    return out
