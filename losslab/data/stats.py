"""Class statistics of a labelled dataset and the static class weights built on them.

All functions take ``counts``, the int64 ``[cases, C]`` voxel count of every class in every
case. A class absent from every case has frequency 0 and weight 0 (it has nothing to weigh).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from losslab.schedules import class_schedules as schedule_weights


def case_class_counts(labels: Sequence[torch.Tensor], num_classes: int) -> torch.Tensor:
    """Voxels of each class in each case.

    Args:
        labels: integer ``[D, H, W]`` label volumes (any device, any shapes).
        num_classes: C.

    Returns:
        int64 ``[cases, C]`` on the CPU.
    """
    rows = [torch.bincount(lab.reshape(-1).long(), minlength=num_classes) for lab in labels]
    if not rows:
        return torch.zeros(0, num_classes, dtype=torch.int64)
    return torch.stack(rows).cpu()[:, :num_classes]


def class_frequencies(counts: torch.Tensor) -> torch.Tensor:
    """Median-frequency-balancing frequencies (Eigen and Fergus, as used by Hegde et al.).

    ``freq_c = voxels of class c / voxels of the images where c is present``.

    Args:
        counts: int64 ``[cases, C]``.

    Returns:
        float64 ``[C]``, 0 for absent classes.
    """
    counts = counts.to(torch.float64)
    present = counts > 0
    case_totals = counts.sum(dim=1, keepdim=True)
    exposure = (present * case_totals).sum(dim=0)
    return torch.where(exposure > 0, counts.sum(dim=0) / exposure.clamp_min(1.0), 0.0)


def median_frequency_weights(counts: torch.Tensor) -> torch.Tensor:
    """Median frequency balancing of the class frequencies of ``counts [cases, C]``.

    The formula is the class schedule's (``losslab.schedules``), so the weights a user inspects
    are the ones the trainer applies. Returns float32 ``[C]``, 0 for absent classes.
    """
    freq = class_frequencies(counts).tolist()
    return torch.tensor(schedule_weights.median_frequency_weights(freq), dtype=torch.float32)


def inverse_frequency_weights(counts: torch.Tensor) -> torch.Tensor:
    """``1 / freq_c`` with Hegde's frequencies (:func:`class_frequencies`), present classes
    averaging 1: the ``inverse_frequency`` class schedule's formula, the one definition of
    "inverse frequency" in losslab. Returns float32 ``[C]``, 0 for absent classes.
    """
    freq = class_frequencies(counts).tolist()
    return torch.tensor(schedule_weights.inverse_frequency_weights(freq), dtype=torch.float32)
