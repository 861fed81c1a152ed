"""Batch augmentation on the device: random flips per axis and intensity scale / shift."""

from __future__ import annotations

import torch


def augment(
    images: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    flip_prob: float = 0.5,
    scale: float = 0.1,
    shift: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly flip each sample along each spatial axis and jitter its intensities.

    Every sample draws its own flips (the same for its image and label) and its own
    ``images * (1 + s) + t`` with ``s ~ U(-scale, scale)``, ``t ~ U(-shift, shift)``. No host
    synchronisation: flips are applied with ``torch.where`` on per-sample masks.

    Args:
        images: float ``[B, Cin, D, H, W]``.
        labels: integer ``[B, D, H, W]``.
        generator: a ``torch.Generator`` on the tensors' device.
        flip_prob: probability of a flip, per sample and axis.
        scale: half-width of the multiplicative intensity jitter.
        shift: half-width of the additive intensity jitter.

    Returns:
        ``(images, labels)`` of the same shapes and dtypes (new tensors).
    """
    if images.ndim != 5 or labels.ndim != 4 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected images [B, C, D, H, W] and labels [B, D, H, W], "
            f"got {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    if images.shape[2:] != labels.shape[1:]:
        raise ValueError(f"image {tuple(images.shape)} and label {tuple(labels.shape)} differ")
    b, dev = images.shape[0], images.device
    flips = torch.rand(b, 3, generator=generator, device=dev) < flip_prob
    flip = _flip_selected if dev.type == "cpu" else _flip_masked
    images, labels = flip(images, labels, flips)
    jitter = torch.rand(b, 2, generator=generator, device=dev, dtype=images.dtype) * 2 - 1
    s = (1 + scale * jitter[:, 0]).view(b, 1, 1, 1, 1)
    t = (shift * jitter[:, 1]).view(b, 1, 1, 1, 1)
    return images * s + t, labels


def _flip_masked(
    images: torch.Tensor, labels: torch.Tensor, flips: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip with ``torch.where`` on per-sample masks ``flips [B, 3]``: no host synchronisation."""
    b = images.shape[0]
    for axis in range(3):
        mask = flips[:, axis]
        images = torch.where(mask.view(b, 1, 1, 1, 1), images.flip(axis + 2), images)
        labels = torch.where(mask.view(b, 1, 1, 1), labels.flip(axis + 1), labels)
    return images, labels


def _flip_selected(
    images: torch.Tensor, labels: torch.Tensor, flips: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip only the samples drawn (a host read is free on the CPU), as MONAI's RandFlip does."""
    images, labels = images.clone(), labels.clone()
    for i, row in enumerate(flips.tolist()):
        axes = [axis for axis, flip in enumerate(row) if flip]
        if axes:
            images[i] = images[i].flip([a + 1 for a in axes])
            labels[i] = labels[i].flip(axes)
    return images, labels
