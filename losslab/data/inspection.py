"""Check a whole Decathlon folder and summarise it, collecting every problem at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from losslab.data import checks, decathlon, stats
from losslab.data.errors import DatasetError, DatasetProblem
from losslab.data.splits import DEFAULT_SPLIT_FRACTIONS, split_problem


@dataclass(frozen=True)
class CaseSummary:
    """What ``inspect_decathlon`` learned about one case (None where a file is at fault).

    Attributes:
        case_id: name of the case.
        shape: ``(D, H, W)`` of the image in RAS+ order.
        spacing: voxel size in mm.
        counts: int64 ``[C]`` voxels per class of the label.
    """

    case_id: str
    shape: tuple[int, int, int] | None
    spacing: tuple[float, float, float] | None
    counts: np.ndarray | None


@dataclass
class InspectionReport:
    """Summary of a Decathlon folder, all its problems and its warnings.

    Attributes:
        problems: what makes the folder unusable (``load_dataset`` refuses it).
        warnings: legal but suspicious data (``load_dataset`` trains on it and logs them).
    """

    root: Path
    manifest: decathlon.DecathlonManifest | None
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
        """One row per class: voxels, share of labelled voxels, cases present, freq, weight."""
        if self.manifest is None or not self.manifest.class_names:
            return []
        counts = self.case_class_counts()
        totals = counts.sum(dim=0)
        labelled = max(int(totals[1:].sum()), 1)
        freq = stats.class_frequencies(counts)
        weights = stats.median_frequency_weights(counts)
        return [
            {
                "value": c,
                "name": name,
                "voxels": int(totals[c]),
                "share": (float(totals[c]) / labelled) if c > 0 else float("nan"),
                "cases": int((counts[:, c] > 0).sum()),
                "frequency": float(freq[c]),
                "mfb_weight": float(weights[c]),
            }
            for c, name in enumerate(self.manifest.class_names)
        ]


def inspect_decathlon(data_dir: str | Path) -> InspectionReport:
    """Read every file of a Decathlon folder and collect all its problems and warnings.

    Every file is read fully, one case at a time. Images: readable (not truncated), shape,
    spacing, at least ``checks.MIN_CASE_SIZE`` voxels along each side, finite intensities.
    Labels: readable, shape against the image, integer values among the ``dataset.json``
    labels, not background only in every case (``checks.label_findings``). The folder: enough
    cases for the default ``split_fractions``. These are the checks ``load_dataset`` applies.
    """
    manifest, problems = decathlon.parse_manifest(data_dir)
    report = InspectionReport(Path(data_dir), manifest, problems=list(problems))
    if manifest is None:
        return report
    num_classes = len(manifest.class_names) or None
    seen: set[Path] = set()
    label_paths: list[Path] = []
    for case in manifest.cases:
        if case.image in seen:
            report.problems.append(DatasetProblem(case.image, "listed twice in 'training'"))
        seen.add(case.image)
        shape, spacing = _inspect_image(case.image, report.problems)
        counts = None
        try:
            label = decathlon.read_label(case, num_classes, shape)
            if num_classes is not None:
                counts = np.bincount(label.reshape(-1), minlength=num_classes).astype(np.int64)
                label_paths.append(case.label)
        except DatasetError as exc:
            report.problems.append(DatasetProblem.of(exc))
        report.cases.append(CaseSummary(case.case_id, shape, spacing, counts))
    if manifest.cases:
        problem = split_problem(len(manifest.cases), DEFAULT_SPLIT_FRACTIONS)
        if problem is not None:
            report.problems.append(DatasetProblem(manifest.path, problem))
    if label_paths:
        found, warned = checks.label_findings(
            report.case_class_counts().numpy(), manifest.class_names, label_paths, manifest.path
        )
        report.problems.extend(found)
        report.warnings.extend(warned)
    return report


def _inspect_image(
    path: Path, problems: list[DatasetProblem]
) -> tuple[tuple[int, int, int] | None, tuple[float, float, float] | None]:
    """``(shape, spacing)`` of an image (None where unreadable); its problems go to the list."""
    try:
        nifti = decathlon.load_nifti(path)
        shape = decathlon.spatial_shape(nifti, path)
    except DatasetError as exc:
        problems.append(DatasetProblem.of(exc))
        return None, None
    spacing = decathlon.spacing_of(nifti)
    size = checks.size_problem(shape)
    if size is not None:
        problems.append(DatasetProblem(path, size))
    try:
        decathlon.read_image(nifti, path, shape)
    except DatasetError as exc:
        problems.append(DatasetProblem.of(exc))
    return shape, spacing
