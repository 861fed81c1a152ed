"""Geometry of a volume (shape, voxel size, voxel-to-world affine) and the check that a label
lies on its image's voxel grid.

Both volumes are compared after reorientation to RAS+ (as the loader reads them), so a label
stored in another orientation that covers the same voxels in the world passes, and one whose
origin is shifted or whose axis is reversed relative to the image (it would be trained mirrored
or shifted against the image) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from losslab.data.errors import DatasetError

TRANSLATION_TOLERANCE_MM = 1e-3
"""Largest difference, in mm, between the origins of an image and its label.

The origin is the world position of voxel ``(0, 0, 0)`` (after reorientation to RAS+).
NIfTI stores the affine in float32, whose rounding of a 1000 mm origin is below 1e-4 mm, so
files written by different tools from one grid agree far within 1e-3 mm, while any real shift
(a fraction of a voxel and more) is far beyond it.
"""

LINEAR_TOLERANCE = 1e-4
"""Largest difference between the 3x3 (direction times spacing) parts of the two affines,
relative to the largest entry of the image's (about its largest voxel size): float32 rounding
and quaternion round trips (qform) stay below 1e-6; a rotation of 0.01 degree is 1.7e-4."""


@dataclass(frozen=True, eq=False)
class Geometry:
    """Where the voxels of a volume lie in the world.

    Attributes:
        shape: ``(D, H, W)`` in RAS+ order.
        affine: float64 ``[4, 4]`` voxel-to-world (mm) matrix of the RAS+ reoriented volume.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def origin(self) -> np.ndarray:
        """World position (mm) of voxel ``(0, 0, 0)``."""
        return self.affine[:3, 3]


def spatial_shape(image: nib.Nifti1Image, path: Path) -> tuple[int, int, int]:
    """The ``(D, H, W)`` shape of a single-channel volume; raise if it has several channels."""
    shape = tuple(int(s) for s in image.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DatasetError(path, f"expected a 3D single-channel volume, got shape {shape}")
    return shape  # type: ignore[return-value]


def spacing_of(image: nib.Nifti1Image) -> tuple[float, float, float]:
    """Voxel size in mm along the three spatial axes."""
    return tuple(float(z) for z in image.header.get_zooms()[:3])  # type: ignore[return-value]


def geometry_of(image: nib.Nifti1Image, path: Path) -> Geometry:
    """The geometry of an opened (RAS+ reoriented) volume; raise if it has several channels."""
    return Geometry(spatial_shape(image, path), np.asarray(image.affine, dtype=np.float64))


def _vector(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _matrix(values: np.ndarray) -> str:
    return "[" + ", ".join(_vector(row) for row in values) + "]"


def _stored_orientation(path: Path) -> str | None:
    """Axis codes of a file as stored (``"L-A-S"``), None when its header cannot be read."""
    try:
        return "-".join(nib.aff2axcodes(nib.load(path).affine))
    except Exception:  # only used to explain a mismatch; the file was readable a moment ago
        return None


def _orientations(label: Path, image: Path, what: str) -> str:
    stored_label, stored_image = _stored_orientation(label), _stored_orientation(image)
    if stored_label is None or stored_image is None or stored_label == stored_image:
        return ""
    return f"; the {what} is stored {stored_label} and the image {stored_image}"


def geometry_problem(
    label: Geometry, image: Geometry, label_path: Path, image_path: Path, what: str = "label"
) -> str | None:
    """Why a label does not lie on its image's voxel grid, or None when it does.

    Shapes must be equal, the 3x3 parts of the affines equal within ``LINEAR_TOLERANCE``
    (relative) and the origins within ``TRANSLATION_TOLERANCE_MM``. The message names the
    image file (the label is the file at fault) and, when the stored orientations differ, both.
    ``what`` names the volume checked in the message (``"channel"`` for a further input
    channel checked against the first).
    """
    if label.shape != image.shape:
        return f"{what} shape {label.shape} differs from image shape {image.shape} of {image_path}"
    linear_label, linear_image = label.affine[:3, :3], image.affine[:3, :3]
    scale = max(float(np.abs(linear_image).max()), 1e-12)
    if float(np.abs(linear_label - linear_image).max()) > LINEAR_TOLERANCE * scale:
        return (
            f"{what} voxel axes differ from those of image {image_path} (direction x spacing "
            f"in RAS+: {what} {_matrix(linear_label)}, image {_matrix(linear_image)}; relative "
            f"tolerance {LINEAR_TOLERANCE:g}){_orientations(label_path, image_path, what)}; the "
            f"{what} must lie on the image's voxel grid"
        )
    distance = float(np.linalg.norm(label.origin - image.origin))
    if float(np.abs(label.origin - image.origin).max()) > TRANSLATION_TOLERANCE_MM:
        return (
            f"{what} origin is {distance:.4g} mm from that of image {image_path} (voxel (0, 0, 0) "
            f"in RAS+: {what} {_vector(label.origin)} mm, image {_vector(image.origin)} mm; "
            f"tolerance {TRANSLATION_TOLERANCE_MM:g} mm)"
            f"{_orientations(label_path, image_path, what)}; the {what} must lie on the "
            f"image's voxel grid"
        )
    return None
