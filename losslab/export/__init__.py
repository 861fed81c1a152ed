"""The objective a search found, used where users train: a torch loss module, and exports to a
MONAI training loop and to an nnU-Net v2 trainer."""

from __future__ import annotations

from losslab.export.deep_supervision import deep_supervision_weights, downsample_target
from losslab.export.module import ExportedLoss, needs_frequencies

__all__ = [
    "ExportedLoss",
    "deep_supervision_weights",
    "downsample_target",
    "needs_frequencies",
]
