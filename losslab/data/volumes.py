"""NIfTI volumes of a dataset folder: opening, reading and checking images and labels.

Volumes are reoriented to RAS+ on reading, so axis 0 points to the patient's right, axis 1
anterior and axis 2 superior whatever the orientation on disk; a label, and every further
input channel of a case, must lie on the first channel's voxel grid
(``geometry.geometry_problem``).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from losslab.data import checks
from losslab.data.errors import DatasetError
from losslab.data.geometry import Geometry, geometry_of, geometry_problem, spacing_of
from losslab.data.labels import LabelMap, check_values
from losslab.data.manifest import NIFTI_SUFFIXES, DatasetCase

NIFTI_HEADER_BYTES = 348
TRUNCATED = "the file is truncated or corrupt"


def load_nifti(path: Path) -> nib.Nifti1Image:
    """Open a NIfTI file reoriented to RAS+ (data read lazily by nibabel).

    Raises:
        DatasetError: the file is missing, not named ``.nii``/``.nii.gz`` or not readable.
    """
    if not path.is_file():
        raise DatasetError(path, "file is missing")
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise DatasetError(path, "not a NIfTI file (expected .nii or .nii.gz)")
    try:
        image = nib.load(path)
        if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
            raise DatasetError(path, f"not a NIfTI file ({type(image).__name__})")
        return nib.as_closest_canonical(image)
    except DatasetError:
        raise
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise DatasetError(path, _unreadable_header(path, exc)) from exc


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _unreadable_header(path: Path, exc: Exception) -> str:
    """Why a header cannot be read: a cut file, else nibabel's reason (checked on failure only)."""
    if path.name.endswith(".gz"):
        try:
            with gzip.open(path) as stream:
                while stream.read(1 << 20):
                    pass
        except EOFError:
            return f"{TRUNCATED}: its header cannot be read (the gzip stream ends early)"
        except (OSError, zlib.error):
            pass
    elif path.stat().st_size < NIFTI_HEADER_BYTES:
        return f"{TRUNCATED}: {path.stat().st_size} bytes, less than a NIfTI header"
    return f"cannot be read as NIfTI ({_one_line(exc)})"


def _unreadable(exc: Exception) -> str:
    return f"{TRUNCATED}: its voxel data cannot be read ({type(exc).__name__}: {_one_line(exc)})"


def read_label(
    case: DatasetCase, classes: int | LabelMap | None, image: Geometry | None
) -> tuple[np.ndarray, dict[int, int]]:
    """Read and check the label of a case.

    The geometry is checked only when the ``image``'s is given (``geometry_problem``: same
    shape, affines equal within tolerance), the values only when ``classes`` is: a number of
    classes (values must be ``0..classes-1``), or a ``LabelMap`` (listed values become their
    class, the others background).

    Returns:
        ``(label, dropped)``: uint8 (int64 beyond 256 classes; the values as stored when
        ``classes`` is None) ``[D, H, W]`` label in RAS+ order, and the voxels of each value a
        ``LabelMap`` does not list.

    Raises:
        DatasetError: unreadable (e.g. truncated) file, geometry different from the image's
            (naming both files), non-integer values or values not among the ``dataset.json``
            labels (the message gives the values as stored, negative ones included).
    """
    nifti = load_nifti(case.label)
    geometry = geometry_of(nifti, case.label)
    if image is not None:
        problem = geometry_problem(geometry, image, case.label, case.image)
        if problem is not None:
            raise DatasetError(case.label, problem)
    try:
        data = np.asanyarray(nifti.dataobj).reshape(geometry.shape)
    except Exception as exc:  # gzip, zlib, mmap and nibabel errors of a cut file
        raise DatasetError(case.label, _unreadable(exc)) from exc
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or np.any(np.mod(data, 1) != 0):
            raise DatasetError(case.label, "label has non-integer values")
        data = data.astype(np.int64)
    if isinstance(classes, LabelMap):
        return classes.apply(data)
    if classes is None:
        return data, {}
    check_values(data, classes, case.label)
    return data.astype(np.uint8 if classes <= 256 else np.int64), {}


def read_image(nifti: nib.Nifti1Image, path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """The float32 ``[D, H, W]`` voxels of an opened image, checked to be finite.

    Raises:
        DatasetError: the data cannot be read (e.g. a truncated file) or holds NaN or infinite
            voxels (the trainer would fail on them with a non-finite loss).
    """
    try:
        image = np.asarray(nifti.get_fdata(dtype=np.float32)).reshape(shape)
    except Exception as exc:  # gzip, zlib, mmap and nibabel errors of a cut file
        raise DatasetError(path, _unreadable(exc)) from exc
    problem = checks.finite_problem(image)
    if problem is not None:
        raise DatasetError(path, problem)
    return image


def open_channel(path: Path, first: Geometry, first_path: Path) -> tuple[nib.Nifti1Image, Geometry]:
    """Open a further input channel of a case, checked to lie on the first channel's grid.

    Raises:
        DatasetError: the channel file is missing, unreadable, or not on the voxel grid of the
            first channel ``first_path`` (both named).
    """
    nifti = load_nifti(path)
    geometry = geometry_of(nifti, path)
    problem = geometry_problem(geometry, first, path, first_path, "channel")
    if problem is not None:
        raise DatasetError(path, problem)
    return nifti, geometry


def read_case(
    case: DatasetCase, classes: int | LabelMap
) -> tuple[np.ndarray, np.ndarray, tuple, dict[int, int]]:
    """Read one checked case.

    Returns:
        ``(image, label [D, H, W], spacing (mm, 3), dropped)``: the image float32
        ``[D, H, W]`` for one channel, ``[K, D, H, W]`` for ``K`` channels; ``dropped`` as
        ``read_label`` gives it.

    Raises:
        DatasetError: naming the file at fault: unreadable, smaller than
            ``checks.MIN_CASE_SIZE`` along a side, non-finite image voxels, bad label, label or
            further channel geometry different from the first channel's.
    """
    nifti = load_nifti(case.image)
    geometry = geometry_of(nifti, case.image)
    problem = checks.size_problem(geometry.shape)
    if problem is not None:
        raise DatasetError(case.image, problem)
    others = [(open_channel(p, geometry, case.image)[0], p) for p in case.images[1:]]
    label, dropped = read_label(case, classes, geometry)
    image = read_image(nifti, case.image, geometry.shape)
    if others:
        image = np.stack([image, *(read_image(n, p, geometry.shape) for n, p in others)])
    return image, label, spacing_of(nifti), dropped
