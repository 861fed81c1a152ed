"""Synthetic abdominal CT phantom with the 13 BTCV organ classes (the embedded default dataset).

The class shares of labelled voxels follow Table 1 of Willoughby and Voiculescu (2024) (liver 55.2% ... adrenals 0.1%
each), organs sit where they are in the abdomen, and every case differs in shape, size,
position and intensities. Arrays are in RAS+ axis order (axis 0 towards the patient's right,
axis 1 anterior, axis 2 superior), so writing them with a diagonal 1.5 mm affine gives
NIfTI files that need no reorientation.

Example:
    >>> image, label = make_phantom_case(0, shape=(32, 32, 32))
    >>> image.shape, image.dtype.name, int(label.max()) <= 13
    ((32, 32, 32), 'float32', True)
"""

from __future__ import annotations

import numpy as np

from losslab.data._phantom_anatomy import PHANTOM_CLASSES, PHANTOM_TARGET_SHARES, build_anatomy
from losslab.data._phantom_ct import render_ct

__all__ = [
    "PHANTOM_CLASSES",
    "PHANTOM_SPACING",
    "PHANTOM_TARGET_SHARES",
    "PHANTOM_VERSION",
    "make_phantom_case",
    "phantom_case_seed",
]

PHANTOM_VERSION = "1"
"""Bumped whenever the generator's output for a given seed changes (part of fingerprints)."""

PHANTOM_SPACING: tuple[float, float, float] = (1.5, 1.5, 1.5)
"""Voxel size in mm written to the NIfTI affine."""


def make_phantom_case(
    seed: int, shape: tuple[int, int, int] = (96, 96, 96)
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one phantom case.

    Args:
        seed: seed of the ``numpy.random.Generator``; the same seed gives the same arrays.
        shape: ``(D, H, W)``, each at least 8.

    Returns:
        ``(image, label)``: float32 ``[D, H, W]`` CT in Hounsfield units and uint8
        ``[D, H, W]`` labels in ``0 .. 13`` (index into ``PHANTOM_CLASSES``).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"phantom shape must be three sizes of at least 8, got {shape}")
    rng = np.random.default_rng(seed)
    anatomy = build_anatomy(rng, shape)
    image = render_ct(rng, anatomy)
    return image, anatomy.label


def phantom_case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a phantom dataset drawn with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)
