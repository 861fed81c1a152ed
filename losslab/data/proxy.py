"""The proxy task: a small phantom on which the rare classes can be learned on two CPU cores.

The abdominal phantom (``losslab.data.phantom``) keeps the 13 BTCV classes and their shares;
at any fidelity a CPU affords, its three rarest organs (4-20 voxels a case) stay at Dice 0, so
no loss can be told from another where imbalance matters. The proxy keeps the imbalance and
drops what makes the rare classes unlearnable in minutes: six classes (a large organ, two
medium ones and three small compact blobs), 24^3 voxels, organs near fixed positions
(a few voxels of jitter), higher contrast and less noise. The rarest class is 0.5% of the
foreground (0.45% on average: about 19 voxels a case at 24^3), the three small ones together
3.45%.

Every organ claims exactly ``k`` voxels of the body (the ``k`` free voxels where its ellipsoid
field is lowest, small organs first), ``k`` following ``PROXY_TARGET_SHARES`` times a random
size factor, so the shares hold at any resolution. Bowel-like blobs of soft-tissue attenuation
in the fat around the organs are distractors: the small organs cannot be found by intensity
alone.

Example:
    >>> image, label = make_proxy_case(0)
    >>> image.shape, int(label.max())
    ((24, 24, 24), 6)
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from losslab.data._smooth import smooth_noise

__all__ = [
    "PROXY_CLASSES",
    "PROXY_JITTER",
    "PROXY_SHAPE",
    "PROXY_SPACING",
    "PROXY_TARGET_SHARES",
    "PROXY_VERSION",
    "make_proxy_case",
]

PROXY_VERSION = "2"
"""Bumped whenever the generator's output for a given seed changes (part of fingerprints)."""

PROXY_SHAPE: tuple[int, int, int] = (24, 24, 24)
"""The shape the proxy task is calibrated at (a 24^3 patch covers a case)."""

PROXY_SPACING: tuple[float, float, float] = (4.0, 4.0, 4.0)
"""Voxel size in mm written to the NIfTI affine (a coarse abdomen)."""

PROXY_CLASSES: tuple[str, ...] = (
    "background",
    "liver",
    "spleen",
    "kidney",
    "gallbladder",
    "adrenal_gland",
    "lymph_node",
)
"""Class names; the index is the label value."""

PROXY_TARGET_SHARES: dict[str, float] = {
    "liver": 0.5705,
    "spleen": 0.25,
    "kidney": 0.145,
    "gallbladder": 0.02,
    "adrenal_gland": 0.01,
    "lymph_node": 0.0045,
}
"""Share of the labelled (non-background) voxels per organ."""

FOREGROUND_FRACTION = 0.3
"""Average fraction of all voxels that carry an organ label."""

# name: (centre x, y, z in normalised [-1, 1] coordinates, radii, mean HU, texture HU)
_ORGANS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float], float, float]] = {
    "lymph_node": ((0.05, 0.15, -0.55), (1.0, 1.0, 1.0), 170.0, 6.0),
    "adrenal_gland": ((-0.4, -0.45, 0.35), (0.8, 1.0, 1.4), 20.0, 5.0),
    "gallbladder": ((0.4, 0.5, -0.35), (1.0, 1.0, 1.3), 0.0, 4.0),
    "kidney": ((-0.1, -0.5, -0.3), (1.0, 0.8, 1.4), 190.0, 8.0),
    "spleen": ((-0.5, 0.0, 0.3), (0.8, 1.0, 1.2), 125.0, 6.0),
    "liver": ((0.35, 0.1, 0.25), (1.0, 1.0, 1.1), 95.0, 6.0),
}
PROXY_JITTER = 0.04
"""Default sd of each organ's centre between cases, normalised units (half a voxel at 24^3)."""
_FAT_HU, _MUSCLE_HU, _BOWEL_HU = -90.0, 50.0, 60.0


def _grid(shape: tuple[int, int, int]) -> np.ndarray:
    """Normalised voxel-centre coordinates ``[3, D, H, W]`` in ``[-1, 1]``."""
    axes = [((np.arange(n, dtype=np.float32) + 0.5) / n) * 2 - 1 for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"))


def _claim(label: np.ndarray, free: np.ndarray, field: np.ndarray, k: int, value: int) -> None:
    """Label the ``k`` free voxels with the lowest ``field`` (fewer when fewer are free)."""
    k = min(k, int(free.sum()))
    if k < 1:
        return
    vals = np.where(free, field, np.inf).ravel()
    idx = np.argpartition(vals, k - 1)[:k]
    label.ravel()[idx] = value


def make_proxy_case(
    seed: int, shape: tuple[int, int, int] = PROXY_SHAPE, jitter: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one proxy case.

    Args:
        seed: seed of the ``numpy.random.Generator``; the same seed gives the same arrays.
        shape: ``(D, H, W)``, each at least 8.
        jitter: standard deviation of each organ's centre between cases, in normalised units
            (the volume spans 2); default ``PROXY_JITTER`` (0.04: half a voxel at 24^3). A larger
            one (0.2: 2.4 voxels) leaves a network trained on a few cases room to overfit, the
            regime of Li et al.'s asymmetric losses. The random draws are the same at any
            jitter (only scaled), so cases of one seed differ only in where the organs sit.

    Returns:
        ``(image, label)``: float32 ``[D, H, W]`` CT in Hounsfield units (inside the default
        ``[-175, 250]`` window) and uint8 ``[D, H, W]`` labels in ``0 .. 6`` (index into
        ``PROXY_CLASSES``).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"proxy shape must be three sizes of at least 8, got {shape}")
    jitter = PROXY_JITTER if jitter is None else float(jitter)
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"proxy jitter must lie in [0, 1], got {jitter!r}")
    rng = np.random.default_rng(seed)
    u = _grid(shape)
    x, y, _ = u
    rb = np.sqrt((x / 0.95) ** 2 + (y / 0.85) ** 2)
    body = rb < 1.0
    cavity = rb < 0.88
    label = np.zeros(shape, dtype=np.uint8)
    n_fg = FOREGROUND_FRACTION * float(np.prod(shape)) * float(rng.lognormal(0.0, 0.05))
    shape_noise = smooth_noise(rng, shape, 3)[0]
    hu = np.where(body, _FAT_HU, -1000.0).astype(np.float32)
    hu[body & ~cavity] = _MUSCLE_HU
    for name, (centre, radii, _, _) in _ORGANS.items():
        c = np.asarray(centre, np.float32) + rng.normal(0.0, jitter, 3).astype(np.float32)
        r = np.asarray(radii, np.float32)
        field = np.sqrt(sum(((u[i] - c[i]) / r[i]) ** 2 for i in range(3)))
        field *= np.exp(0.08 * shape_noise)
        k = max(1, round(PROXY_TARGET_SHARES[name] * n_fg * rng.lognormal(0.0, 0.1)))
        _claim(label, cavity & (label == 0), field, k, PROXY_CLASSES.index(name))
    # Bowel loops: soft-tissue blobs in the fat left between the organs.
    fat = cavity & (label == 0)
    bowel = fat & (smooth_noise(rng, shape, 5)[0] > rng.uniform(0.6, 0.9))
    hu[bowel] = _BOWEL_HU
    for name, (_, _, mean, texture) in _ORGANS.items():
        organ = label == PROXY_CLASSES.index(name)
        hu[organ] = mean + rng.normal(0.0, 6.0) + texture * shape_noise[organ]
    hu = ndimage.gaussian_filter(hu, sigma=0.5, truncate=3.0)
    hu += rng.uniform(6.0, 12.0) * rng.standard_normal(shape, dtype=np.float32)
    return hu.astype(np.float32, copy=False), label
