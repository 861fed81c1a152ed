"""Sanity rules on the content of a dataset, shared by ``inspect_decathlon`` and the loader.

Each rule returns what is wrong (None or nothing when it holds), so ``inspect`` can collect
every finding while the loader raises on the first problem and logs the warnings.

A *problem* makes the data unusable (the loader refuses it, ``inspect`` exits non-zero):
non-finite intensities, a case smaller than ``MIN_CASE_SIZE`` voxels along a side, labels that
are background only in every case. A *warning* is legal but suspicious data that trains, with
a caveat: one case whose label is background only, a class that occurs in no label.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from losslab.data.errors import DatasetProblem

MIN_CASE_SIZE = 8
"""Fewest voxels a case may have along each side.

The data layer does not know the network (the patch sampler pads a case smaller than the
patch), so this is a sanity floor rather than a network rule: a volume thinner than 8 voxels
is a thumbnail, a 2D slice or a mix-up of axes, not a 3D case. 8 is also the smallest phantom
edge ``DataConfig`` accepts.
"""


def finite_problem(image: np.ndarray) -> str | None:
    """What is non-finite in an image (NaN or +-inf voxels), or None when all are finite."""
    finite = np.isfinite(image)
    if finite.all():
        return None
    nan = int(np.isnan(image).sum())
    inf = int(image.size - finite.sum()) - nan
    if nan == image.size:
        return f"image is NaN in every voxel ({image.size} voxels)"
    parts = [f"{nan} NaN"] if nan else []
    if inf:
        parts.append(f"{inf} infinite")
    return (
        f"image has {' and '.join(parts)} voxel(s) (of {image.size}); intensities must be "
        f"finite numbers"
    )


def size_problem(shape: Sequence[int]) -> str | None:
    """Why a ``(D, H, W)`` case is too small, or None when every side has ``MIN_CASE_SIZE``."""
    if min(shape) >= MIN_CASE_SIZE:
        return None
    return (
        f"case is {'x'.join(str(int(n)) for n in shape)} voxels; every side needs at least "
        f"{MIN_CASE_SIZE} voxels"
    )


def _listing(paths: Sequence[Path], root: Path, most: int = 3) -> str:
    def name(path: Path) -> str:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            return str(path)

    shown = ", ".join(name(p) for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def label_findings(
    counts: np.ndarray,
    class_names: Sequence[str],
    labels: Sequence[Path],
    manifest_path: Path,
) -> tuple[list[DatasetProblem], list[DatasetProblem]]:
    """Problems and warnings of the label contents of a dataset.

    Args:
        counts: int ``[cases, C]`` voxels of each class in each case.
        class_names: the ``dataset.json`` labels, index = value, ``[0]`` background.
        labels: the label file of each row of ``counts``.
        manifest_path: ``dataset.json``, named by findings about the whole dataset.

    Returns:
        ``(problems, warnings)``: a problem when every label is background only (there is
        nothing to segment); warnings for each label that is background only while others are
        not (legal, e.g. a scan without the lesion, but often a wrong or empty file) and for
        the classes that occur in no label (their Dice cannot be measured, their weight is 0).
    """
    counts = np.asarray(counts)
    if counts.shape[0] == 0 or len(class_names) < 2:
        return [], []
    foreground = counts[:, 1:].sum(axis=1)
    background_only = [path for path, fg in zip(labels, foreground) if fg == 0]
    if len(background_only) == counts.shape[0]:
        listed = _listing(background_only, manifest_path.parent)
        problem = (
            f"every label is background only ({len(background_only)} case(s): {listed}); "
            f"there is nothing to segment"
        )
        return [DatasetProblem(manifest_path, problem)], []
    last = len(class_names) - 1
    warnings = [
        DatasetProblem(path, f"label is background only (no voxel of classes 1..{last})")
        for path in background_only
    ]
    absent = [
        f"{c} {class_names[c]!r}" for c in range(1, len(class_names)) if not counts[:, c].any()
    ]
    if absent:
        warnings.append(
            DatasetProblem(
                manifest_path,
                f"class(es) {', '.join(absent)} occur in no label: their Dice cannot be "
                f"measured and their weight is 0",
            )
        )
    return [], warnings
