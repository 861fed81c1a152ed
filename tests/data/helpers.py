"""Helpers shared by the data tests."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

PHANTOM_SHAPE = (32, 28, 24)  # not a cube, so that an axis mix-up shows


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Save ``array`` as NIfTI (1 mm identity affine by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), path)
    return path


def tiny_case(seed: int, shape: tuple[int, int, int] = (10, 9, 8)) -> tuple[np.ndarray, np.ndarray]:
    """A random HU image and a label with one box of class 1."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 50.0, shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    label[2:5, 3:6, 1:4] = 1
    return image, label
