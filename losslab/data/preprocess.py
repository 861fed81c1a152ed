"""Preprocessing of one case: resampling, cropping to the body and intensity normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

NORMALIZATIONS = ("auto", "ct_window", "zscore", "nonzero_zscore", "none")


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings of ``preprocess_case``; they enter the cache key and the data fingerprint.

    Attributes:
        spacing: target voxel size in mm, or None to keep the native spacing.
        normalization: ``"auto"`` (``ct_window`` for CT, ``nonzero_zscore`` otherwise),
            ``"ct_window"`` (clip to ``ct_window`` then scale to [0, 1]), ``"zscore"`` (whole
            volume), ``"nonzero_zscore"`` (statistics of the nonzero voxels, zeros kept), or
            ``"none"``.
        ct_window: ``(low, high)`` Hounsfield window of ``ct_window``: two finite numbers,
            ``low < high`` (see ``DataConfig`` for the choice of window).
        crop_foreground: crop each case to the bounding box of its foreground (image above
            ``foreground_threshold``, plus every labelled voxel).
        foreground_threshold: defaults to -500 HU for CT and 0 otherwise.
    """

    spacing: tuple[float, float, float] | None = None
    normalization: str = "auto"
    ct_window: tuple[float, float] = (-175.0, 250.0)
    crop_foreground: bool = False
    foreground_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}"
            )
        if self.spacing is not None and (len(self.spacing) != 3 or min(self.spacing) <= 0):
            raise ValueError(f"spacing must be three positive sizes in mm, got {self.spacing}")
        if not _valid_window(self.ct_window):
            raise ValueError(
                f"ct_window={self.ct_window!r} must be (low, high): two finite Hounsfield values "
                f"with low < high, e.g. (-175, 250)"
            )

    def as_dict(self) -> dict:
        """JSON-ready settings."""
        return asdict(self)


def _valid_window(window: object) -> bool:
    try:
        low, high = window  # type: ignore[misc]
    except (TypeError, ValueError):
        return False
    numbers = all(
        isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in window
    )
    return numbers and bool(np.isfinite([low, high]).all()) and low < high


def resample(
    image: np.ndarray,
    label: np.ndarray,
    spacing: tuple[float, float, float],
    target: tuple[float, float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Resample a case to ``target`` spacing: image trilinear, label nearest.

    Args:
        image: float32 ``[D, H, W]``, or ``[K, D, H, W]`` for ``K`` channels.
        label: integer ``[D, H, W]``.
        spacing: current voxel size (mm).
        target: wanted voxel size (mm).

    Returns:
        ``(image [D', H', W'] (or [K, D', H', W']), label [D', H', W'])`` with
        ``D' = round(D * spacing / target)``.
    """
    shape = label.shape
    size = tuple(max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target))
    if size == shape:
        return image, label
    channels = image if image.ndim == 4 else image[None]
    img = torch.from_numpy(np.ascontiguousarray(channels, dtype=np.float32))[None]
    lab = torch.from_numpy(np.ascontiguousarray(label).astype(np.float32))[None, None]
    img = F.interpolate(img, size=size, mode="trilinear", align_corners=False)
    lab = F.interpolate(lab, size=size, mode="nearest-exact")
    out = img[0].numpy() if image.ndim == 4 else img[0, 0].numpy()
    return out, lab[0, 0].numpy().astype(label.dtype)


def _crop_to_mask(
    image: np.ndarray, label: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Crop image (``[D, H, W]`` or ``[K, D, H, W]``) and label to the box of ``mask [D, H, W]``."""
    if not mask.any():
        return image, label
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return image[(..., *box)], label[tuple(box)]


def crop_to_foreground(
    image: np.ndarray, label: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``[D, H, W]`` image and label to the box of ``image > threshold`` or ``label > 0``."""
    return _crop_to_mask(image, label, (image > threshold) | (label > 0))


def normalize(image: np.ndarray, is_ct: bool, config: PreprocessConfig) -> np.ndarray:
    """Normalise intensities of a float32 ``[D, H, W]`` image as ``config.normalization`` says."""
    mode = config.normalization
    if mode == "auto":
        mode = "ct_window" if is_ct else "nonzero_zscore"
    if mode == "none":
        return image.astype(np.float32, copy=False)
    if mode == "ct_window":
        lo, hi = config.ct_window
        return ((np.clip(image, lo, hi) - lo) / (hi - lo)).astype(np.float32)
    if mode == "zscore":
        return ((image - image.mean()) / max(float(image.std()), 1e-8)).astype(np.float32)
    nonzero = image != 0
    if not nonzero.any():
        return image.astype(np.float32, copy=False)
    values = image[nonzero]
    out = np.zeros_like(image, dtype=np.float32)
    out[nonzero] = (values - values.mean()) / max(float(values.std()), 1e-8)
    return out


def preprocess_case(
    image: np.ndarray,
    label: np.ndarray,
    spacing: tuple[float, float, float],
    is_ct: bool | Sequence[bool],
    config: PreprocessConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample, crop and normalise one case (in that order).

    A case of several channels is resampled and cropped as one (the crop box holds every
    channel's foreground) and normalised channel by channel, as nnU-Net normalises each
    channel by its own scheme (Isensee et al., Nature Methods 2021).

    Args:
        image: float32 ``[D, H, W]``, or ``[K, D, H, W]`` for ``K`` channels, in RAS+ order
            (raw intensities, e.g. HU).
        label: integer ``[D, H, W]``.
        spacing: voxel size in mm.
        is_ct: whether intensities are Hounsfield units: one flag for every channel, or one per
            channel.
        config: the settings.

    Returns:
        ``(image float32 of the input's rank, label [D', H', W'])``.
    """
    channels = image if image.ndim == 4 else image[None]
    flags = [is_ct] * len(channels) if isinstance(is_ct, bool) else [bool(f) for f in is_ct]
    if len(flags) != len(channels):
        raise ValueError(f"{len(flags)} is_ct flag(s) for {len(channels)} channel(s)")
    if config.spacing is not None:
        channels, label = resample(channels, label, spacing, config.spacing)
    if config.crop_foreground:
        mask = label > 0
        for channel, ct in zip(channels, flags):
            threshold = config.foreground_threshold
            if threshold is None:
                threshold = -500.0 if ct else 0.0
            mask |= channel > threshold
        channels, label = _crop_to_mask(channels, label, mask)
    out = np.stack([normalize(c, ct, config) for c, ct in zip(channels, flags)])
    return np.ascontiguousarray(out if image.ndim == 4 else out[0]), np.ascontiguousarray(label)
