"""Check a whole dataset folder (Decathlon or nnU-Net v2 raw) and summarise it, collecting every
problem at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from losslab.data import checks, folders, stats, volumes
from losslab.data.errors import DatasetError, DatasetProblem
from losslab.data.geometry import Geometry, geometry_of, spacing_of
from losslab.data.labels import LabelMap, dropped_warning, parse_labels, value_counts
from losslab.data.manifest import DatasetCase, DatasetManifest
from losslab.data.splits import DEFAULT_SPLIT_FRACTIONS, split_problem


@dataclass(frozen=True)
class CaseSummary:
    """What ``inspect_folder`` learned about one case (None where a file is at fault).

    Attributes:
        case_id: name of the case.
        shape: ``(D, H, W)`` of the (first channel's) image in RAS+ order.
        spacing: voxel size in mm.
        counts: int64 ``[C]`` voxels per class of the label.
    """

    case_id: str
    shape: tuple[int, int, int] | None
    spacing: tuple[float, float, float] | None
    counts: np.ndarray | None


@dataclass
class InspectionReport:
    """Summary of a dataset folder, all its problems and its warnings.

    Attributes:
        problems: what makes the folder unusable (``load_dataset`` refuses it).
        warnings: legal but suspicious data (``load_dataset`` trains on it and logs them).
    """

    root: Path
    manifest: DatasetManifest | None
    cases: list[CaseSummary] = field(default_factory=list)
    problems: list[DatasetProblem] = field(default_factory=list)
    warnings: list[DatasetProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the folder has no problem (warnings allowed)."""
        return not self.problems

    def case_class_counts(self) -> torch.Tensor:
        """int64 ``[cases, C]`` over the cases whose label could be read."""
        rows = [c.counts for c in self.cases if c.counts is not None]
        num_classes = len(self.manifest.class_names) if self.manifest else 0
        if not rows:
            return torch.zeros(0, num_classes, dtype=torch.int64)
        return torch.from_numpy(np.stack(rows))

    def class_table(self) -> list[dict]:
        """One row per class: its label values in the files, voxels, share of labelled voxels,
        cases present, frequency, median frequency weight."""
        if self.manifest is None or not self.manifest.class_names:
            return []
        counts = self.case_class_counts()
        totals = counts.sum(dim=0)
        labelled = max(int(totals[1:].sum()), 1)
        freq = stats.class_frequencies(counts)
        weights = stats.median_frequency_weights(counts)
        label_map = self.manifest.label_map
        return [
            {
                "value": c,
                "file_values": [c]
                if label_map is None
                else [v for v, k in zip(label_map.values, label_map.classes) if k == c],
                "name": name,
                "voxels": int(totals[c]),
                "share": (float(totals[c]) / labelled) if c > 0 else float("nan"),
                "cases": int((counts[:, c] > 0).sum()),
                "frequency": float(freq[c]),
                "mfb_weight": float(weights[c]),
            }
            for c, name in enumerate(self.manifest.class_names)
        ]


def inspect_decathlon(
    data_dir: str | Path,
    labels: object = None,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
) -> InspectionReport:
    """``inspect_folder`` of a Decathlon folder."""
    return inspect_folder(data_dir, labels, split_fractions, source="decathlon")


def inspect_folder(
    data_dir: str | Path,
    labels: object = None,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    *,
    source: str = "decathlon",
) -> InspectionReport:
    """Read every file of a dataset folder and collect all its problems and warnings.

    The layout's own problems come first (``dataset.json`` keys; for an nnU-Net folder, file
    names, labels without an image and ``numTraining``). Then every file is read fully, one
    case at a time. Images: readable (not truncated), shape, spacing, at least
    ``checks.MIN_CASE_SIZE`` voxels along each side, finite intensities; a further input
    channel on the first channel's voxel grid. Labels: readable, on the image's voxel grid
    (same shape, affines equal within the tolerances of ``losslab.data.geometry``), integer
    values among the ``dataset.json`` labels (or remapped by ``labels``), not background only
    in every case; classes in no label and values ``labels`` does not list are warnings. The
    folder: enough cases for ``split_fractions``. These are the checks ``load_dataset``
    applies.

    Args:
        data_dir: the dataset folder.
        labels: the ``labels`` option of ``DataConfig`` (label values -> classes), if any.
        split_fractions: train / val / test fractions the cases must allow.
        source: the folder layout, ``"decathlon"`` or ``"nnunet"``.

    Raises:
        ValueError: ``labels`` is not a valid mapping (the message names the entry), or
            ``source`` is not a folder layout.
    """
    spec = parse_labels(labels)
    label_map = None if spec is None else LabelMap.of(spec)
    manifest, problems = folders.parse_folder(data_dir, label_map, source=source)
    report = InspectionReport(Path(data_dir), manifest, problems=list(problems))
    if manifest is None:
        return report
    classes = manifest.classes
    seen: set[Path] = set()
    label_paths: list[Path] = []
    dropped: list[dict[int, int]] = []
    for case in manifest.cases:
        if case.image in seen:
            listing = "'training'" if manifest.layout == "decathlon" else "'dataset'"
            report.problems.append(DatasetProblem(case.image, f"listed twice in {listing}"))
        seen.add(case.image)
        geometry, spacing = _inspect_image(case.image, report.problems)
        if geometry is not None:
            _inspect_channels(case, geometry, report.problems)
        counts = None
        try:
            label, unlisted = volumes.read_label(case, classes, geometry)
            if classes is not None:
                counts = value_counts(label, len(manifest.class_names))
                label_paths.append(case.label)
                dropped.append(unlisted)
        except DatasetError as exc:
            report.problems.append(DatasetProblem.of(exc))
        shape = None if geometry is None else geometry.shape
        report.cases.append(CaseSummary(case.case_id, shape, spacing, counts))
    if manifest.cases:
        problem = split_problem(len(manifest.cases), split_fractions)
        if problem is not None:
            report.problems.append(DatasetProblem(manifest.path, problem))
    if label_paths:
        found, warned = checks.label_findings(
            report.case_class_counts().numpy(), manifest.class_names, label_paths, manifest.path
        )
        report.problems.extend(found)
        report.warnings.extend(warned)
    warning = dropped_warning(dropped, manifest.path)
    if warning is not None:
        report.warnings.append(warning)
    return report


def _inspect_channels(case: DatasetCase, first: Geometry, problems: list[DatasetProblem]) -> None:
    """Check the further input channels of a case (each read fully) against the first's grid."""
    for path in case.images[1:]:
        try:
            nifti, geometry = volumes.open_channel(path, first, case.image)
            volumes.read_image(nifti, path, geometry.shape)
        except DatasetError as exc:
            problems.append(DatasetProblem.of(exc))


def _inspect_image(
    path: Path, problems: list[DatasetProblem]
) -> tuple[Geometry | None, tuple[float, float, float] | None]:
    """``(geometry, spacing)`` of an image (None where unreadable); its problems go to the list."""
    try:
        nifti = volumes.load_nifti(path)
        geometry = geometry_of(nifti, path)
    except DatasetError as exc:
        problems.append(DatasetProblem.of(exc))
        return None, None
    size = checks.size_problem(geometry.shape)
    if size is not None:
        problems.append(DatasetProblem(path, size))
    try:
        volumes.read_image(nifti, path, geometry.shape)
    except DatasetError as exc:
        problems.append(DatasetProblem.of(exc))
    return geometry, spacing_of(nifti)
