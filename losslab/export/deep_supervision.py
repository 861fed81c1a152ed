"""Deep supervision as nnU-Net v2 does it: the weights of the outputs and the downsampled targets.

Isensee et al., "nnU-Net: a self-configuring method for deep learning-based biomedical image
segmentation", Nature Methods 2021; the numbers follow nnU-Net v2's ``nnUNetTrainer._build_loss``
(weights) and ``DownsampleSegForDSTransform`` (targets).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["deep_supervision_weights", "downsample_target"]


def deep_supervision_weights(outputs: int, *, last: float = 0.0) -> list[float]:
    """nnU-Net's weights of ``outputs`` deep-supervision outputs, full resolution first.

    ``w_i = 1 / 2**i``, the lowest resolution set to ``last`` (nnU-Net: 0, or 1e-6 under DDP
    without ``torch.compile``), then normalised to sum to 1. With one output the weight is 1.

    Example:
        >>> [round(w, 4) for w in deep_supervision_weights(4)]
        [0.5714, 0.2857, 0.1429, 0.0]

    Raises:
        ValueError: ``outputs < 1`` or a negative ``last``.
    """
    if outputs < 1:
        raise ValueError(f"deep supervision needs at least one output, got {outputs}")
    if last < 0:
        raise ValueError(f"last must be >= 0, got {last!r}")
    if outputs == 1:
        return [1.0]
    weights = [1.0 / 2**i for i in range(outputs)]
    weights[-1] = float(last)
    total = sum(weights)
    return [w / total for w in weights]


def downsample_target(target: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``target [B, K, *spatial]`` (labels ``K = 1`` or one-hot ``K = C``) resized to ``size``
    by ``nearest-exact`` interpolation, as nnU-Net downsamples segmentations for deep
    supervision; the dtype is kept. A target of that size already is returned as it is."""
    if tuple(target.shape[2:]) == tuple(size):
        return target
    resized = F.interpolate(target.float(), size=tuple(int(s) for s in size), mode="nearest-exact")
    return resized.to(target.dtype)
